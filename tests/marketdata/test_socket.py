"""The feed's pybit socket (`PublicSocket`): its fast path hands the feed exactly what pybit itself
would, keeps pybit's own handling of everything else, and lets nothing that is not UTF-8 JSON
through."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from pybit.unified_trading import WebSocket

from services.common.bybit import BybitEnv, BybitVenue, VenueSocket
from services.exchangesim.app import Simulator
from services.marketdata.socket import PublicSocket
from tests.marketdata.helpers import eventually


async def in_own_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """pybit blocks (connecting, closing): a thread of its own, never the loop's shared executor."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="pybit-test")
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    finally:
        pool.shutdown(wait=False)


def close(*sockets: WebSocket) -> None:
    closers = [threading.Thread(target=s.exit, daemon=True) for s in sockets]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(5)


class Recorder:
    """A pybit callback keeping what it was handed, as it was at that moment."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(copy.deepcopy(message))

    def of(self, prefix: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["topic"].startswith(prefix)]


async def test_klines_and_merged_tickers_arrive_exactly_as_pybit_hands_them_over(
    sim: Simulator, symbol: str
) -> None:
    venue = BybitVenue(BybitEnv.SIMULATOR, sim.http_url)
    stock = await in_own_thread(lambda: venue.websocket("linear"))
    fast = await in_own_thread(lambda: venue.websocket("linear", socket_class=PublicSocket))
    seen = {"stock": Recorder(), "fast": Recorder()}
    try:
        for name, socket in (("stock", stock), ("fast", fast)):
            socket.kline_stream(interval=1, symbol=symbol, callback=seen[name])
            socket.ticker_stream(symbol=symbol, callback=seen[name])
        topics = (f"kline.1.{symbol}", f"tickers.{symbol}")
        public = sim.public["linear"]
        await eventually(
            lambda: all(len(public.subscribers.get(t, ())) == 2 for t in topics), 20, "both subscribed"
        )
        for _ in range(6):  # a ticker snapshot, then deltas merged into it; klines closing each minute
            sim.clock.advance(1)
            await asyncio.sleep(0.05)
        await eventually(
            lambda: len(seen["fast"].messages) == len(seen["stock"].messages) >= 12,
            20,
            "every message on both",
        )
        assert seen["fast"].of("kline.") == seen["stock"].of("kline.")
        assert any(m["data"][0]["confirm"] for m in seen["fast"].of("kline."))
        tickers = seen["fast"].of("tickers.")
        assert tickers == seen["stock"].of("tickers.")
        assert all(m["type"] == "snapshot" and m["data"]["symbol"] == symbol for m in tickers)
        assert len({m["data"]["lastPrice"] for m in tickers}) > 1, "the deltas never moved the price"
    finally:
        await asyncio.to_thread(close, stock, fast)


async def test_replies_to_unsubscribe_still_take_pybits_own_path(sim: Simulator, symbol: str) -> None:
    venue = BybitVenue(BybitEnv.SIMULATOR, sim.http_url)
    fast = await in_own_thread(lambda: venue.websocket("linear", socket_class=PublicSocket))
    try:
        fast.kline_stream(interval=1, symbol=symbol, callback=lambda _m: None)
        topic = f"kline.1.{symbol}"
        await eventually(lambda: sim.public["linear"].subscribers.get(topic), 20, "subscribed")
        fast.unsubscribe(topic)
        # pybit forgets the topic only when it handles the exchange's reply to the unsubscribe.
        await eventually(lambda: topic not in fast.callback_directory, 20, "pybit handled the reply")
        assert not fast.subscriptions
    finally:
        await asyncio.to_thread(close, fast)


@pytest.fixture
async def rogue_exchange() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A Bybit-shaped public stream that sends, after each subscription, the text frames queued in
    the list it yields (raw bytes, valid UTF-8 or not)."""
    frames: list[bytes] = []

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if '"subscribe"' in msg.data:
                await ws.send_str('{"success":true,"ret_msg":"","op":"subscribe","conn_id":"x"}')
                for raw in frames:
                    await ws.send_frame(raw, WSMsgType.TEXT)
        return ws

    app = web.Application()
    app.add_routes([web.get("/v5/public/{category}", stream)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", frames
    finally:
        await runner.cleanup()


async def rogue_socket(url: str) -> PublicSocket:
    """The feed's socket on the rogue exchange, giving up (not reconnecting) when pybit errs."""
    venue = BybitVenue(BybitEnv.SIMULATOR, url)
    socket: PublicSocket = await in_own_thread(
        lambda: venue.websocket("linear", retries=2, restart_on_error=False, socket_class=PublicSocket)
    )
    return socket


@pytest.mark.parametrize("invalid", ["bytes", "lone surrogate"])
async def test_a_frame_that_is_not_utf8_reaches_no_callback(
    rogue_exchange: tuple[str, list[bytes]], invalid: str
) -> None:
    url, frames = rogue_exchange
    good = b'{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[{"confirm":true,"open":"1"}]}'
    text = b"\xff\xfe" if invalid == "bytes" else b"\xed\xa0\x80"  # the latter: UTF-16's 0xD800
    bad = (
        b'{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":2,"data":[{"confirm":true,"open":"'
        + text
        + b'"}]}'
    )
    frames.extend([good, bad, good])
    fast = await rogue_socket(url)
    received: list[dict[str, Any]] = []
    try:
        fast.kline_stream(interval=1, symbol="BTCUSDT", callback=received.append)
        # pybit treats a message it cannot parse as fatal (it closes the socket rather than guess);
        # the feed's liveness check rebuilds a socket that went quiet.
        await eventually(lambda: fast.exited, 20, "the socket to give up on the bad frame")
        await asyncio.sleep(0.2)
        assert received == [
            {
                "topic": "kline.1.BTCUSDT",
                "type": "snapshot",
                "ts": 1,
                "data": [{"confirm": True, "open": "1"}],
            }
        ]
    finally:
        await asyncio.to_thread(close, fast)


async def test_an_answer_read_before_pybit_noted_its_subscription_keeps_the_socket(
    rogue_exchange: tuple[str, list[bytes]],
) -> None:
    """pybit notes a subscription's req_id only after sending it, so the exchange's answer can be read
    first. Here the answer carries a req_id pybit never noted (what the race looks like to it); pybit's
    own handling raised KeyError and ended the socket for good. The kline after it must still arrive."""
    url, frames = rogue_exchange
    frames.extend(
        [
            b'{"success":true,"ret_msg":"","op":"subscribe","conn_id":"x","req_id":"not-noted-yet"}',
            b'{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[{"confirm":true,"open":"1"}]}',
        ]
    )
    fast = await rogue_socket(url)
    received: list[dict[str, Any]] = []
    try:
        fast.kline_stream(interval=1, symbol="BTCUSDT", callback=received.append)
        await eventually(lambda: bool(received), 20, "the kline after the early answer")
        assert fast.is_connected() and not fast.exited
    finally:
        await asyncio.to_thread(close, fast)


class SlowToRegister(VenueSocket):
    """pybit registers a topic's callback after sending the subscription; here that takes a while, as
    it can when the subscribing thread waits for the GIL, so the exchange's first data comes first."""

    def _set_callback(self, topic: str, callback_function: Callable[..., Any]) -> None:
        time.sleep(0.3)
        super()._set_callback(topic, callback_function)


async def test_data_read_before_pybit_registered_its_callback_still_arrives(
    rogue_exchange: tuple[str, list[bytes]],
) -> None:
    """Every stream's socket (execution's private ones too) waits for the callback; pybit's own
    handling raised KeyError on the socket's thread and the socket ended."""
    url, frames = rogue_exchange
    kline = b'{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[{"confirm":true,"open":"1"}]}'
    frames.append(kline)
    venue = BybitVenue(BybitEnv.SIMULATOR, url)
    slow: SlowToRegister = await in_own_thread(
        lambda: venue.websocket("linear", retries=2, restart_on_error=False, socket_class=SlowToRegister)
    )
    received: list[dict[str, Any]] = []
    try:
        await in_own_thread(lambda: slow.kline_stream(interval=1, symbol="BTCUSDT", callback=received.append))
        await eventually(lambda: bool(received), 20, "the kline read before its callback was registered")
        assert received[0]["ts"] == 1 and slow.is_connected() and not slow.exited
    finally:
        await asyncio.to_thread(close, slow)
