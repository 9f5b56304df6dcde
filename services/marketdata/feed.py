"""The live side: one pybit public WebSocket per category, its topics following demand.

pybit runs each socket in its own thread and calls back from there; the sockets are `PublicSocket`s
(socket.py), whose kline and ticker messages skip pybit's generic handling. The callback only appends to a
deque (thread-safe) and, when the loop is not already due to look, wakes it with
`call_soon_threadsafe`: one wake-up per burst rather than per message keeps the ingest path cheap.
Everything else happens on the asyncio loop, in arrival order.

pybit's constructor and `subscribe` block (they wait for the connection), so they run in worker
threads. Sockets are built only when a stream is needed: with no demand the service never touches
the exchange, and it starts and serves without one.

Reconnects: pybit reconnects by itself after a drop and re-sends its subscriptions; the feed learns
of it through the socket's `_on_open` hook (pybit calls it on every open, the first one inside the
constructor) and reports it, so the streams of that category can repair what the gap swallowed. A
feed gone silent without a drop is rebuilt by `reconnect`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pybit.unified_trading import WebSocket

from services.common.bybit import BybitVenue
from services.marketdata.metrics import FeedMetrics
from services.marketdata.socket import PublicSocket

log = logging.getLogger("tradebot.marketdata.feed")

Handler = Callable[[str, dict[str, Any]], Awaitable[None]]


class MarketFeed:
    def __init__(
        self,
        venue: BybitVenue,
        metrics: FeedMetrics,
        on_reconnect: Callable[[str], None],
        *,
        connect_retries: int = 0,
    ) -> None:
        self._venue = venue
        self._metrics = metrics
        self._on_reconnect = on_reconnect
        self._retries = connect_retries  # 0 = pybit keeps trying for ever
        self._sockets: dict[str, WebSocket] = {}
        self._topics: dict[str, set[str]] = collections.defaultdict(set)
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._inbox: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._generation: dict[str, int] = collections.defaultdict(int)
        self._callbacks: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._due = False
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    # pybit's threads ----------------------------------------------------------------------------
    def _callback_for(self, category: str, generation: int) -> Callable[[dict[str, Any]], None]:
        inbox, loop, generations = self._inbox, self._loop, self._generation

        def on_message(message: dict[str, Any]) -> None:
            # A replaced socket may linger while pybit gives up on it; it no longer speaks for us.
            if generations[category] != generation:
                return
            inbox.append((category, message))
            if not self._due:
                self._due = True
                loop.call_soon_threadsafe(self._wake.set)

        return on_message

    def _reopened(self, category: str, generation: int) -> None:
        if self._generation[category] == generation:
            self._loop.call_soon_threadsafe(self._reconnected, category)

    # the loop ---------------------------------------------------------------------------------
    async def run(self, handle: Handler) -> None:
        """Hand every message to `handle`, in arrival order, for ever."""
        inbox, messages = self._inbox, self._metrics.messages
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Reset before draining: a message appended from now on schedules another wake-up.
            self._due = False
            while inbox:
                category, message = inbox.popleft()
                messages[category] += 1
                await handle(category, message)

    def _reconnected(self, category: str) -> None:
        log.warning("WebSocket reconnected", extra={"category": category})
        self._metrics.reconnects.add(1, {"category": category, "cause": "dropped"})
        self._on_reconnect(category)

    # topics -------------------------------------------------------------------------------------
    def _build(self, category: str) -> WebSocket:
        """A new socket for `category`; from now on only its messages count."""
        self._generation[category] += 1
        generation = self._generation[category]
        self._callbacks[category] = self._callback_for(category, generation)
        callback = self._callbacks[category]
        socket = self._venue.websocket(category, retries=self._retries, socket_class=PublicSocket)
        socket._on_open = lambda: self._reopened(category, generation)  # every later open is a reconnect
        # pybit looks a message's callback up by topic and raises KeyError for a topic it does not hold
        # (a message still in flight after an unsubscribe, a refused subscription), which kills the
        # socket for good. We route by topic ourselves: every message goes to the one callback.
        socket._get_callback = lambda topic: callback
        socket._pop_callback = lambda topic: socket.callback_directory.pop(topic, None)
        return socket

    def _usable(self, category: str) -> WebSocket | None:
        """The category's socket unless pybit gave up on it (`exited` after an error it will not retry)."""
        socket = self._sockets.get(category)
        if socket is not None and socket.exited and not socket.is_connected():
            del self._sockets[category]
            return None
        return socket

    @staticmethod
    def _subscribe(socket: WebSocket, topic: str, callback: Callable[[dict[str, Any]], None]) -> None:
        # pybit's subscribe waits for ever for a connection; while it is reconnecting, fail instead and
        # let the caller try again, rather than hold a thread and the category's lock indefinitely.
        if not socket.is_connected():
            raise ConnectionError(f"the {topic} socket is not connected yet")
        kind, _, rest = topic.partition(".")
        if kind == "kline":
            interval, _, symbol = rest.partition(".")
            socket.kline_stream(interval=interval, symbol=symbol, callback=callback)
        else:
            socket.ticker_stream(symbol=rest, callback=callback)

    @staticmethod
    def _unsubscribe(socket: WebSocket, topic: str) -> None:
        # pybit's own `unsubscribe` matches by substring ("kline.1.X" also matches "kline.1.XY"); find
        # the subscription whose only topic is this one and send its unsubscribe with the same req_id,
        # which is how pybit recognises the reply and forgets the topic.
        for _req_id, text in list(socket.subscriptions.items()):
            sent = json.loads(text)
            if sent.get("args") == [topic]:
                socket.ws.send(json.dumps({**sent, "op": "unsubscribe"}))
                return
        socket.callback_directory.pop(topic, None)
        log.warning("no subscription to drop", extra={"topic": topic, "req_id": None})

    async def subscribe(self, category: str, topic: str) -> None:
        async with self._locks[category]:
            if topic in self._topics[category]:
                return
            socket = self._usable(category)
            if socket is None:
                socket = await asyncio.to_thread(self._build, category)
                self._sockets[category] = socket
                for held in sorted(self._topics[category]):  # a rebuilt socket carries every topic
                    await asyncio.to_thread(self._subscribe, socket, held, self._callbacks[category])
            await asyncio.to_thread(self._subscribe, socket, topic, self._callbacks[category])
            self._topics[category].add(topic)

    async def unsubscribe(self, category: str, topic: str) -> None:
        async with self._locks[category]:
            if topic not in self._topics[category]:
                return
            self._topics[category].discard(topic)
            socket = self._sockets.get(category)
            if socket is None:
                return
            if not self._topics[category]:
                # Nothing left on this socket: close it rather than keep an idle connection.
                del self._sockets[category]
                self._generation[category] += 1
                await asyncio.to_thread(socket.exit)
                return
            await asyncio.to_thread(self._unsubscribe, socket, topic)

    async def reconnect(self, category: str) -> None:
        """Replace a category's socket with a fresh one carrying the same topics (a silent feed)."""
        async with self._locks[category]:
            old = self._sockets.pop(category, None)
            self._generation[category] += 1
            if old is not None:
                await asyncio.to_thread(old.exit)
            topics = sorted(self._topics[category])
            if not topics:
                return
            socket = await asyncio.to_thread(self._build, category)
            self._sockets[category] = socket
            callback = self._callbacks[category]
            for topic in topics:
                await asyncio.to_thread(self._subscribe, socket, topic, callback)
        self._metrics.reconnects.add(1, {"category": category, "cause": "stale"})
        self._on_reconnect(category)

    def connected(self, category: str) -> bool:
        socket = self._sockets.get(category)
        return socket is not None and bool(socket.is_connected())

    async def close(self) -> None:
        for category in list(self._sockets):
            async with self._locks[category]:
                socket = self._sockets.pop(category, None)
                if socket is not None:
                    await asyncio.to_thread(socket.exit)
