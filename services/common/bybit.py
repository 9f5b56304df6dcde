"""Which Bybit the platform talks to, in one place, and the only code that builds pybit clients.

`BYBIT_ENV` picks the venue: `simulator` (the bundled exchangesim at `BYBIT_SIMULATOR_URL`),
`testnet`, `demo` (demo trading: private side on the demo hosts, public data from mainnet) or
`mainnet`. Services ask this module for an `HTTP` session or a `WebSocket` and never touch hosts.

pybit takes no host argument: HTTP sessions take `endpoint` after construction, and WebSockets read
the module's URL templates inside their constructor, so the templates are set (under a lock) just
before each WebSocket is built and restored right after.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pybit import unified_trading

_DEFAULT_PUBLIC_WSS = unified_trading.PUBLIC_WSS
_DEFAULT_PRIVATE_WSS = unified_trading.PRIVATE_WSS
_TEMPLATES = threading.Lock()
log = logging.getLogger("tradebot.bybit")


CALLBACK_WAIT_SECONDS = 1.0


class VenueSocket(unified_trading.WebSocket):
    """pybit's stream, safe against a fast exchange. pybit notes a subscription's req_id and the
    topic's callback only after sending the subscription, so the answer, or the topic's first data,
    can be read (on the socket's thread) first: pybit's own handling then raises KeyError and the
    socket ends (seen in CI: a restarted feed got no candle until its liveness check; a test's stream
    was down when the simulator dropped connections). The answer only informs (pybit logs it); a
    refusal is logged here, and the callers repair what a missing subscription leaves out. Data waits
    for its callback, which the subscribing thread registers a moment later."""

    def _process_subscription_message(self, message: dict[str, Any]) -> None:
        if message.get("success") is False:
            refusal = {"req_id": message.get("req_id"), "reason": message.get("ret_msg")}
            log.error("subscription refused", extra=refusal)

    def _get_callback(self, topic: str) -> Any:
        deadline = time.monotonic() + CALLBACK_WAIT_SECONDS
        while (callback := self.callback_directory.get(topic)) is None:
            if time.monotonic() > deadline:  # not being subscribed: nobody asked for this topic
                log.warning("message for a topic nobody subscribed to dropped", extra={"topic": topic})
                return _drop
            time.sleep(0.001)  # lets the subscribing thread finish registering it
        return callback


def _drop(message: Any) -> None:
    return None


class BybitEnv(StrEnum):
    SIMULATOR = "simulator"
    TESTNET = "testnet"
    DEMO = "demo"
    MAINNET = "mainnet"


def websocket_base(http_base: str) -> str:
    base = http_base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    return "ws://" + base.split("://", 1)[-1]


def point_pybit_at(http_base: str, session: Any = None) -> None:
    """Aim pybit at another Bybit-compatible host ("http://host:port"), e.g. the simulator.

    Sets the WebSocket URL templates for WebSockets built afterwards, and `session.endpoint` if a
    session is given. Prefer `BybitVenue`, which scopes the templates to one construction.
    """
    ws = websocket_base(http_base)
    unified_trading.PUBLIC_WSS = ws + "/v5/public/{CHANNEL_TYPE}"
    unified_trading.PRIVATE_WSS = ws + "/v5/private"
    if session is not None:
        session.endpoint = http_base.rstrip("/")


@dataclass(frozen=True)
class BybitVenue:
    env: BybitEnv
    simulator_url: str = "http://127.0.0.1:8900"

    def http(
        self, api_key: str | None = None, api_secret: str | None = None, *, timeout: int = 10, **kwargs: Any
    ) -> unified_trading.HTTP:
        """A REST session. Retries are off by default: callers decide what a retry means for an order.
        (pybit's `max_retries` counts attempts, so 1 is a single try; 0 would make no request at all.)"""
        kwargs.setdefault("max_retries", 1)
        session = unified_trading.HTTP(
            testnet=self.env is BybitEnv.TESTNET,
            demo=self.env is BybitEnv.DEMO,
            api_key=api_key,
            api_secret=api_secret,
            timeout=timeout,
            **kwargs,
        )
        if self.env is BybitEnv.SIMULATOR:
            session.endpoint = self.simulator_url.rstrip("/")
        return session

    def websocket(
        self,
        channel_type: str,
        api_key: str | None = None,
        api_secret: str | None = None,
        *,
        socket_class: type[VenueSocket] = VenueSocket,
        **kwargs: Any,
    ) -> unified_trading.WebSocket:
        """A public (`spot`, `linear`, …) or private (`private`) stream with pybit's reconnects.

        `socket_class` may be a subclass of `VenueSocket` (e.g. one with a faster message path);
        it is built here like pybit's own, so it gets the venue's hosts."""
        private = channel_type == "private"
        with _TEMPLATES:
            if self.env is BybitEnv.SIMULATOR:
                point_pybit_at(self.simulator_url)
            try:
                return socket_class(
                    testnet=self.env is BybitEnv.TESTNET,
                    # Demo trading has its own private streams; its public data is mainnet's.
                    demo=self.env is BybitEnv.DEMO and private,
                    channel_type=channel_type,
                    api_key=api_key,
                    api_secret=api_secret,
                    **kwargs,
                )
            finally:
                unified_trading.PUBLIC_WSS = _DEFAULT_PUBLIC_WSS
                unified_trading.PRIVATE_WSS = _DEFAULT_PRIVATE_WSS
