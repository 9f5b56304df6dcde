"""Each fault knob, and pybit's WebSocket reconnecting and resubscribing after a drop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import requests
from pybit.unified_trading import HTTP

from services.common.bybit import BybitEnv, BybitVenue, point_pybit_at
from services.exchangesim.app import SimConfig, Simulator
from tests.exchangesim.helpers import close_streams, get, in_own_thread, post, wait_for

ORDER = {
    "category": "linear",
    "symbol": "SOLUSDT",
    "side": "Buy",
    "orderType": "Limit",
    "qty": "1",
    "price": "100",
}


async def _fault(http: aiohttp.ClientSession, sim: Simulator, **rule: Any) -> None:
    async with http.post(sim.http_url + "/admin/faults", json=rule) as resp:
        assert resp.status == 200, await resp.text()


async def test_error_code_for_next_calls(sim: Simulator, http: aiohttp.ClientSession) -> None:
    await _fault(http, sim, kind="error", code=10016, count=2, path="/v5/market/")
    codes = []
    for _ in range(3):
        _, body, _ = await get(http, sim.http_url, None, "/v5/market/time", "")
        codes.append(body["retCode"])
    assert codes == [10016, 10016, 0]
    await _fault(http, sim, kind="error", code=10006, count=1)
    _, body, headers = await get(http, sim.http_url, None, "/v5/market/time", "")
    assert body["retCode"] == 10006 and int(headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000


async def test_http_status_and_rate(sim: Simulator, http: aiohttp.ClientSession) -> None:
    await _fault(http, sim, kind="http", status=502, rate=1.0)
    async with http.get(sim.http_url + "/v5/market/time") as resp:
        assert resp.status == 502
    async with http.delete(sim.http_url + "/admin/faults") as resp:
        assert (await resp.json()) == {"faults": []}
    await _fault(http, sim, kind="http", status=503, rate=0.5)
    statuses = []
    for _ in range(40):
        async with http.get(sim.http_url + "/v5/market/time") as resp:
            statuses.append(resp.status)
    assert 5 < statuses.count(503) < 35 and statuses.count(200) + statuses.count(503) == 40


async def test_delay_and_hang(sim: Simulator, http: aiohttp.ClientSession) -> None:
    await _fault(http, sim, kind="delay", delay_ms=300, count=1)
    started = time.monotonic()
    await get(http, sim.http_url, None, "/v5/market/time", "")
    assert time.monotonic() - started >= 0.3
    key = sim.create_account({"USDT": "1000"})
    await _fault(http, sim, kind="hang", delay_ms=400, count=1, path="/v5/order/create")
    try:
        await post(http, sim.http_url, key, "/v5/order/create", ORDER)
        raise AssertionError("a hung call must not answer")
    except aiohttp.ClientError:
        pass
    async with http.get(f"{sim.http_url}/admin/accounts/{key.uid}/orders") as resp:
        assert (await resp.json())["orders"] == []  # hung before it was served


def _accept_then_timeout(sim: Simulator, key: Any) -> None:
    session = HTTP(testnet=False, api_key=key.key, api_secret=key.secret, timeout=0.5, max_retries=1)
    point_pybit_at(sim.http_url, session)
    requests.post(
        sim.http_url + "/admin/faults",
        json={"kind": "accept_timeout", "delay_ms": 2000, "count": 1, "path": "/v5/order/create"},
        timeout=5,
    )
    try:
        session.place_order(**ORDER, orderLinkId="sig-1")
        raise AssertionError("the reply should time out")
    except requests.exceptions.RequestException:
        pass
    # the order exists although the client never heard back: look it up, never re-place
    found = session.get_open_orders(category="linear", symbol="SOLUSDT", orderLinkId="sig-1")["result"][
        "list"
    ]
    assert [o["orderLinkId"] for o in found] == ["sig-1"]


async def test_accept_then_time_out(sim: Simulator) -> None:
    key = sim.create_account({"USDT": "1000"})
    await in_own_thread(_accept_then_timeout, sim, key)


async def test_clock_skew_gives_10002(sim: Simulator, http: aiohttp.ClientSession) -> None:
    key = sim.create_account({"USDT": "1000"})
    async with http.post(sim.http_url + "/admin/clock-skew", json={"skew_ms": 30_000}) as resp:
        assert resp.status == 200
    _, body, _ = await post(http, sim.http_url, key, "/v5/order/create", ORDER)
    assert body["retCode"] == 10002
    _, server, _ = await get(http, sim.http_url, None, "/v5/market/time", "")
    assert int(server["result"]["timeSecond"]) >= int(time.time()) + 29


async def test_clock_controls(sim: Simulator, http: aiohttp.ClientSession) -> None:
    async with http.get(sim.http_url + "/admin/clock") as resp:
        before = await resp.json()
    assert before["paused"] is True
    async with http.post(sim.http_url + "/admin/clock", json={"action": "step", "candles": 3}) as resp:
        after = await resp.json()
    assert after["now_ms"] - before["now_ms"] == 3 * 3_600_000
    _, kl, _ = await get(
        http, sim.http_url, None, "/v5/market/kline", "category=linear&symbol=SOLUSDT&interval=60&limit=1"
    )
    assert int(kl["result"]["list"][0][0]) == after["now_ms"]  # the bar just opened
    async with http.post(
        sim.http_url + "/admin/clock", json={"action": "speed", "seconds_per_candle": 0.6}
    ) as resp:
        assert (await resp.json())["seconds_per_candle"] == 0.6
    async with http.post(sim.http_url + "/admin/clock", json={"action": "resume"}) as resp:
        assert (await resp.json())["paused"] is False
    await asyncio.sleep(0.35)
    async with http.post(sim.http_url + "/admin/clock", json={"action": "pause"}) as resp:
        moved = (await resp.json())["minute"] - after["minute"]
    assert 10 <= moved <= 60  # ~0.35 s at 0.6 s per hourly candle


def _reconnect(sim: Simulator, key: Any) -> None:
    venue = BybitVenue(BybitEnv.SIMULATOR, sim.http_url)  # its lock guards pybit's URL templates
    public = venue.websocket("linear", retries=10)
    private = venue.websocket("private", api_key=key.key, api_secret=key.secret)
    bars: list[Any] = []
    orders: list[Any] = []
    public.kline_stream(interval=1, symbol="SOLUSDT", callback=bars.append)
    private.order_stream(orders.append)
    try:
        # Both streams must be connected and subscribed before the drop, or the drop proves nothing.
        def klines() -> tuple[Any, ...]:
            return tuple(sim.public["linear"].subscribers.get("kline.1.SOLUSDT", ()))

        def order_streams() -> tuple[Any, ...]:
            return tuple(c for c in sim.private.connections if "order" in c.topics)

        wait_for(lambda: len(klines()) == 1)
        wait_for(lambda: bool(order_streams()))
        before = klines() + order_streams()
        dropped = requests.post(sim.http_url + "/admin/streams/drop", json={"scope": "all"}, timeout=5).json()
        assert dropped["dropped"] == 2
        # New connections, subscribed again: the dropped ones may still be listed for a moment, and a
        # candle sent to them would reach nobody.
        wait_for(lambda: len(klines()) == 1 and klines()[0] not in before, timeout=20)
        wait_for(lambda: any(c not in before for c in order_streams()), timeout=20)
        seen = len(bars)
        requests.post(sim.http_url + "/admin/clock", json={"action": "step", "minutes": 3}, timeout=5)
        wait_for(lambda: len(bars) > seen)
        session = HTTP(testnet=False, api_key=key.key, api_secret=key.secret)
        point_pybit_at(sim.http_url, session)
        session.place_order(**ORDER)
        wait_for(lambda: orders)
    finally:
        close_streams(private, public)


async def test_pybit_reconnects_and_resubscribes(http: aiohttp.ClientSession) -> None:
    simulator = Simulator(SimConfig(port=0, paused=True))
    await simulator.start()
    try:
        key = simulator.create_account({"USDT": "1000"})
        await in_own_thread(_reconnect, simulator, key)
    finally:
        await simulator.stop()


async def test_idle_stream_is_closed(http: aiohttp.ClientSession) -> None:
    simulator = Simulator(SimConfig(port=0, paused=True, idle_timeout_s=0.3))
    await simulator.start()
    try:
        async with http.ws_connect(simulator.ws_url + "/v5/public/linear", autoping=False) as ws:
            await ws.send_str('{"op":"ping","req_id":"x"}')
            pong = await ws.receive_json(timeout=1)
            assert pong["ret_msg"] == "pong" and pong["req_id"] == "x"
            msg = await ws.receive(timeout=2)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    finally:
        await simulator.stop()
