"""Exchange simulator throughput against bare aiohttp handlers measured in the same run (loopback).

- signed order round trips per second (POST /v5/order/create, HMAC-verified, validated, matched)
  vs a bare aiohttp JSON handler, same client and concurrency;
- stream messages per second delivered to 100 subscribers of kline/tickers/orderbook/publicTrade
  while the market clock steps, vs a bare aiohttp WebSocket broadcast of the same message count.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from bench.results import write_result
from services.exchangesim.app import SimConfig, Simulator

CONCURRENCY = 16
ORDERS = 3000
SUBSCRIBERS = 100
MINUTES = 150
TOPICS = ["kline.1.SOLUSDT", "tickers.SOLUSDT", "orderbook.50.SOLUSDT", "publicTrade.SOLUSDT"]


def _signed(key: Any, body: str) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    sig = hmac.new(key.secret.encode(), f"{ts}{key.key}5000{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-BAPI-API-KEY": key.key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": sig,
        "Content-Type": "application/json",
    }


async def _round_trips(url: str, keys: list[Any] | None) -> float:
    counter = iter(range(ORDERS))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:

        async def worker() -> None:
            for i in counter:
                body = json.dumps(
                    {
                        "category": "linear",
                        "symbol": "SOLUSDT",
                        "side": "Buy",
                        "orderType": "Limit",
                        "qty": "0.1",
                        "price": "100",
                        "orderLinkId": f"b{i}",
                    }
                )
                headers = _signed(keys[i % len(keys)], body) if keys else {"Content-Type": "application/json"}
                async with http.post(url, data=body, headers=headers) as resp:
                    answer = await resp.json(content_type=None)
                    assert answer["retCode"] == 0, answer

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return ORDERS / (time.perf_counter() - started)


async def _bare_http() -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(
            {"retCode": 0, "retMsg": "OK", "result": {"orderId": "x", "orderLinkId": "y"}}
        )

    app = web.Application()
    app.add_routes([web.post("/v5/order/create", handler)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def _receive_until(ws: aiohttp.ClientWebSocketResponse, count: int) -> None:
    got = 0
    while got < count:
        msg = await ws.receive(timeout=30)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return
        got += 1


async def _sim_fanout(sim: Simulator) -> float:
    async with aiohttp.ClientSession() as http:
        clients = [await http.ws_connect(sim.ws_url + "/v5/public/linear") for _ in range(SUBSCRIBERS)]
        for ws in clients:
            await ws.send_str(json.dumps({"op": "subscribe", "req_id": "b", "args": TOPICS}))
        for ws in clients:  # ack + first snapshots
            await _receive_until(ws, 1 + 3)
        started = time.perf_counter()
        for _ in range(MINUTES):
            sim.clock.advance(1)
            await asyncio.sleep(0)
        # kline, ticker delta and trade every minute (book deltas come on top and are not counted)
        expected = MINUTES * 3
        await asyncio.gather(*(_receive_until(ws, expected) for ws in clients))
        elapsed = time.perf_counter() - started
        for ws in clients:
            await ws.close()
        return SUBSCRIBERS * expected / elapsed


async def _bare_fanout(messages: int, sample: str) -> float:
    clients_ready: list[web.WebSocketResponse] = []
    ready = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        clients_ready.append(ws)
        if len(clients_ready) == SUBSCRIBERS:
            ready.set()
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.add_routes([web.get("/ws", handler)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as http:
        clients = [await http.ws_connect(f"ws://127.0.0.1:{port}/ws") for _ in range(SUBSCRIBERS)]
        await ready.wait()
        started = time.perf_counter()

        async def broadcast() -> None:
            for _ in range(messages):
                for ws in clients_ready:
                    await ws.send_str(sample)

        await asyncio.gather(broadcast(), *(_receive_until(ws, messages) for ws in clients))
        elapsed = time.perf_counter() - started
        for ws in clients:
            await ws.close()
    await runner.cleanup()
    return SUBSCRIBERS * messages / elapsed


async def run() -> dict[str, Any]:
    sim = Simulator(SimConfig(port=0, paused=True, ip_limit=10**9))
    await sim.start()
    keys = [sim.create_account({"USDT": "1000000"}) for _ in range(400)]
    sim_orders = await _round_trips(sim.http_url + "/v5/order/create", keys)
    runner, port = await _bare_http()
    bare_orders = await _round_trips(f"http://127.0.0.1:{port}/v5/order/create", None)
    await runner.cleanup()
    sim_msgs = await _sim_fanout(sim)
    await sim.stop()
    sample = json.dumps(
        {
            "topic": "tickers.SOLUSDT",
            "type": "delta",
            "ts": 1,
            "cs": 1,
            "data": {"symbol": "SOLUSDT", "lastPrice": "142.13", "bid1Price": "142.13"},
        }
    )
    bare_msgs = await _bare_fanout(MINUTES * 3, sample)
    return {
        "signed_order_round_trips_per_s": {
            "ours": round(sim_orders),
            "baseline_bare_aiohttp": round(bare_orders),
            "ratio": round(sim_orders / bare_orders, 3),
        },
        "ws_messages_per_s_100_subscribers": {
            "ours": round(sim_msgs),
            "baseline_bare_aiohttp": round(bare_msgs),
            "ratio": round(sim_msgs / bare_msgs, 3),
        },
    }


def main() -> None:
    figures = asyncio.run(run())
    for name, fig in figures.items():
        print(f"{name}: {fig['ours']} (bare aiohttp {fig['baseline_bare_aiohttp']}, ratio {fig['ratio']})")
    write_result("exchangesim", figures)
