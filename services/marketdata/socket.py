"""pybit's public WebSocket with a fast path for the two topics marketdata lives on.

pybit keeps the connection, subscriptions, ping and reconnects; only the receipt of a message is
shortened. Where a message's time went (per message, one core, before this class): websocket-client
validated each text frame's UTF-8 in pure Python (about 55 µs for a 300-byte kline, wsaccel absent);
pybit then parsed it, tried it against auth/subscribe/unsubscribe replies through closures built per
message, and deep-copied every ticker. Here:

- frames are not UTF-8 validated by websocket-client: they are decoded strictly (in C) just before
  parsing, which refuses the same frames, so nothing invalid gets further than before;
- a `kline.` or `tickers.` message goes straight to the callback; everything else (replies to
  subscribe and unsubscribe, pongs, other topics) takes pybit's own path unchanged;
- a ticker delta is merged into pybit's own row (`self.data`, as pybit does) and handed over as a
  shallow copy: the row holds only strings, so the deep copy bought nothing.

See docs/decisions/0021-marketdata-ingest-fast-path.md.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
import websocket

from services.common.bybit import VenueSocket


def parse(frame: bytes | str) -> Any:
    # orjson refuses invalid UTF-8 and lone surrogates itself, and parses a kline frame in about a
    # third of the standard library's time (docs/decisions/0021).
    return orjson.loads(frame)


class PublicSocket(VenueSocket):
    """A public pybit stream whose kline and ticker messages skip pybit's generic handling."""

    # pybit assigns `self.ws` a fresh WebSocketApp on every (re)connect, just before starting the
    # thread that runs it; intercepting the assignment is how the receive loop gets its options.
    @property
    def ws(self) -> websocket.WebSocketApp:
        try:
            return self.__dict__["ws"]
        except KeyError:
            raise AttributeError("ws") from None  # pybit tests `hasattr(self, "ws")`

    @ws.setter
    def ws(self, app: websocket.WebSocketApp) -> None:
        app.run_forever = functools.partial(app.run_forever, skip_utf8_validation=True)  # type: ignore[method-assign]
        self.__dict__["ws"] = app

    def _on_message(self, message: bytes | str) -> None:
        parsed = parse(message)
        topic = parsed.get("topic")
        if topic is not None:
            if topic.startswith("kline."):
                self._get_callback(topic)(parsed)
                return
            if topic.startswith("tickers."):
                self._get_callback(topic)(self._merge_ticker(topic, parsed))
                return
        if not self._is_custom_pong(parsed):
            self.callback(parsed)

    def _merge_ticker(self, topic: str, message: dict[str, Any]) -> dict[str, Any]:
        """pybit's ticker bookkeeping (snapshot replaces, delta updates) without its deep copy."""
        if message.get("type") == "snapshot" or topic not in self.data:
            self.data[topic] = dict(message["data"])
        else:
            self.data[topic].update(message["data"])
        return {**message, "type": "snapshot", "data": dict(self.data[topic])}
