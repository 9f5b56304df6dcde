"""Market data ingest: WebSocket kline messages in, closed candles out on JetStream, on one core.

A source process (pinned to another core) plays the exchange: Bybit-shaped `kline` messages over a
WebSocket, and the few REST answers the service asks for. The service's own wiring (`server.setup`:
pybit feed, sequencers, publisher, history writer, PostgreSQL, NATS) runs in this process, pinned to
one core. Measured in the same run:

- messages ingested and published per second when every message closes a candle (each becomes a
  JetStream message), and with a realistic mix (9 in-progress updates per closed candle), both against
  pybit's bare callback rate for the same messages (a callback that only counts), and the service's
  messages per CPU-second of its one core (less sensitive to a loaded machine than wall time);
- where the ceiling is, for the same messages: websocket-client's receive loop alone (as pybit runs
  it, and with UTF-8 validation off), pybit bare, and pybit with the service's fast path
  (`services.marketdata.socket.PublicSocket`) bare;
- exchange-close-to-NATS latency p50/p99: from the source's sending of a closing message to a NATS
  subscriber (in the source process, same clock) receiving the candle event, at a steady 1,000/s.

The source writes pre-encoded WebSocket frames straight to the connection, so it can send several
times faster than any receiver here and never is the limit being measured.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import statistics
import struct
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

STREAMS = 100
BLAST = 60_000
PACED = 5_000
PACED_RATE = 1_000
MINUTE_MS = 60_000
BASE_MS = 1_704_067_200_000
CORES = sorted(os.sched_getaffinity(0))


def symbols() -> list[str]:
    return [f"B{i:03d}USDT" for i in range(STREAMS)]


# the source (a separate process) -------------------------------------------------------------------
def kline(symbol: str, start: int, confirm: bool, now_ms: int) -> str:
    row = {
        "start": start,
        "end": start + MINUTE_MS - 1,
        "interval": "1",
        "open": "100.5",
        "close": "101.25",
        "high": "102",
        "low": "99.75",
        "volume": "1234.567",
        "turnover": "124567.8901",
        "confirm": confirm,
        "timestamp": now_ms,
    }
    return json.dumps(
        {"topic": f"kline.1.{symbol}", "type": "snapshot", "ts": now_ms, "data": [row]}, separators=(",", ":")
    )


def frame(text: str) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455 §5.2)."""
    data = text.encode()
    if len(data) < 126:
        return struct.pack("!BB", 0x81, len(data)) + data
    if len(data) < 65536:
        return struct.pack("!BBH", 0x81, 126, len(data)) + data
    return struct.pack("!BBQ", 0x81, 127, len(data)) + data


def plan(count: int, first_minute: int, updates_per_close: int) -> tuple[list[str], list[str]]:
    """`count` messages round-robin over the streams; returns (texts, event id or "" per message)."""
    texts, ids = [], []
    names = symbols()
    for i in range(count):
        symbol = names[i % STREAMS]
        step = i // STREAMS
        minute = first_minute + step // (updates_per_close + 1)
        confirm = step % (updates_per_close + 1) == updates_per_close
        start = BASE_MS + minute * MINUTE_MS
        texts.append(kline(symbol, start, confirm, start + MINUTE_MS))
        ids.append(f"linear.{symbol}.1.{start}" if confirm else "")
    return texts, ids


def run_source(pipe: Connection, nats_url: str) -> None:
    if len(CORES) > 1:
        os.sched_setaffinity(0, {CORES[-1]})
    asyncio.run(_source(pipe, nats_url))


async def _source(pipe: Connection, nats_url: str) -> None:
    import nats
    from aiohttp import web
    from tradebot.marketdata.v1 import events_pb2

    sockets: dict[web.WebSocketResponse, web.Request] = {}
    received: dict[str, int] = {}

    async def on_candle(msg: Any) -> None:
        received[events_pb2.CandleClosed.FromString(msg.data).event_id] = time.time_ns()

    client = await nats.connect(nats_url)
    await client.subscribe("md.candle.bybit.>", cb=on_candle)

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sockets[ws] = request
        async for msg in ws:
            body = json.loads(msg.data)
            reply = {"success": True, "ret_msg": "", "conn_id": "bench", "op": body.get("op")}
            if "req_id" in body:
                reply["req_id"] = body["req_id"]
            if body.get("op") == "ping":
                reply["ret_msg"] = "pong"
            await ws.send_str(json.dumps(reply))
        sockets.pop(ws, None)
        return ws

    def envelope(result: dict[str, Any]) -> web.Response:
        payload = {
            "retCode": 0,
            "retMsg": "OK",
            "result": result,
            "retExtInfo": {},
            "time": int(time.time() * 1000),
        }
        return web.json_response(payload)

    async def rest(request: web.Request) -> web.Response:
        if request.path == "/v5/market/instruments-info":
            rows = [
                {
                    "symbol": s,
                    "status": "Trading",
                    "baseCoin": s[:-4],
                    "quoteCoin": "USDT",
                    "settleCoin": "USDT",
                }
                for s in symbols()
            ]
            return envelope({"category": "linear", "list": rows, "nextPageCursor": ""})
        return envelope({"category": "linear", "list": []})  # no history: streams start live

    app = web.Application()
    app.add_routes([web.get("/v5/public/{category}", stream), web.route("*", "/{tail:.*}", rest)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    pipe.send(port)
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, pipe.recv)
        if command[0] == "stop":
            break
        _, count, first_minute, updates, rate = command
        texts, ids = plan(count, first_minute, updates)
        frames = [frame(text) for text in texts]
        # Exactly one receiver is measured at a time: wait for it (a loaded machine can be slow to
        # register a new socket or to finish closing the last one).
        for _ in range(1000):
            targets = [
                request.transport
                for ws, request in sockets.items()
                if not ws.closed and request.transport is not None and not request.transport.is_closing()
            ]
            if len(targets) == 1:
                break
            await asyncio.sleep(0.01)
        # Frames go straight onto the connection (the replies above are only sent before a run).
        sent: dict[str, int] = {}
        began = time.time_ns()
        if rate:
            for i, encoded in enumerate(frames):
                delay = began + int(i * 1e9 / rate) - time.time_ns()
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                if ids[i]:
                    sent[ids[i]] = time.time_ns()
                for transport in targets:
                    transport.write(encoded)
        else:
            for first in range(0, len(frames), 1000):
                chunk = b"".join(frames[first : first + 1000])
                for transport in targets:
                    transport.write(chunk)
                    while transport.get_write_buffer_size() > 4_000_000 and not transport.is_closing():  # noqa: ASYNC110
                        await asyncio.sleep(0.001)  # the receiver is behind: let it read (no event for it)
        await asyncio.sleep(3.0 if rate else 0.5)  # late candle events of a paced run
        latencies = [(received[k] - v) / 1e6 for k, v in sent.items() if k in received]
        pipe.send({"sent_at": began / 1e9, "latencies_ms": latencies})
    await client.drain()
    await runner.cleanup()


# the measured side (this process, one core) ------------------------------------------------------------
class Source:
    def __init__(self, nats_url: str) -> None:
        self.pipe, theirs = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(target=run_source, args=(theirs, nats_url))
        self.proc.start()
        self.port = int(self.pipe.recv())
        self._minute = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def send(self, count: int, updates: int = 0, rate: int = 0) -> dict[str, Any]:
        # Each run carries on where the last ended: the fake exchange has no history to repair from.
        assert count % (STREAMS * (updates + 1)) == 0, "whole minutes of every stream"
        self.pipe.send(("send", count, self._minute, updates, rate))
        self._minute += count // STREAMS // (updates + 1)
        return dict(await asyncio.to_thread(self.pipe.recv))

    def stop(self) -> None:
        self.pipe.send(("stop",))
        self.proc.join(10)


RECEIVERS = {
    "websocket_client_loop": "websocket-client's receive loop alone, as pybit runs it",
    "websocket_client_loop_no_utf8_check": "websocket-client's receive loop, UTF-8 validation off",
    "pybit_bare": "pybit's WebSocket, a callback that counts (the baseline)",
    "pybit_fast_path_bare": "pybit with the service's PublicSocket, a callback that counts",
}


def subscribed(venue: Any, kind: type, callback: Any) -> Any:
    """A pybit socket of `kind` subscribed to every stream. On a loaded machine a fresh socket is now
    and then closed before it subscribes, and pybit's subscribe would wait for it for ever: rebuilt."""
    for _attempt in range(5):
        socket = venue.websocket("linear", socket_class=kind)
        time.sleep(0.2)
        if socket.is_connected():
            socket.kline_stream(interval=1, symbol=symbols(), callback=callback)  # one subscribe message
            return socket
        print("(the receiver's socket closed before subscribing; rebuilt)", flush=True)
        socket.exit()
    raise RuntimeError("pybit could not stay connected to the source")


async def bare(source: Source, count: int, updates: int, receiver: str) -> tuple[float, float]:
    """One receiver and a callback that counts: messages per second from first send to last callback,
    and per CPU-second of this process (the receiver is all it runs meanwhile)."""
    import websocket
    from pybit.unified_trading import WebSocket

    from services.common.bybit import BybitEnv, BybitVenue, websocket_base
    from services.marketdata.socket import PublicSocket

    done = threading.Event()
    seen = [0, 0.0]

    def on_message(*_args: Any) -> None:
        seen[0] += 1
        if seen[0] == count:
            seen[1] = time.time()
            done.set()

    if receiver.startswith("websocket_client_loop"):
        app = websocket.WebSocketApp(websocket_base(source.url) + "/v5/public/linear", on_message=on_message)
        skip = receiver.endswith("no_utf8_check")
        threading.Thread(  # pybit's ping settings
            target=lambda: app.run_forever(ping_interval=20, ping_timeout=10, skip_utf8_validation=skip),
            daemon=True,
        ).start()
        while not (app.sock and app.sock.connected):  # noqa: ASYNC110 (a thread's state, no event)
            await asyncio.sleep(0.01)
        close = app.close
    else:
        kind = PublicSocket if receiver == "pybit_fast_path_bare" else WebSocket
        socket = await asyncio.to_thread(
            subscribed, BybitVenue(BybitEnv.SIMULATOR, source.url), kind, on_message
        )
        close = socket.exit
    await asyncio.sleep(0.5)
    cpu = time.process_time()
    report = await source.send(count, updates)
    await asyncio.to_thread(done.wait, 60)
    cpu = time.process_time() - cpu
    close()
    return count / (seen[1] - report["sent_at"]), count / cpu


async def stored(js: Any, subject: str) -> int:
    info = await js.stream_info("MARKETDATA", subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def service_rate(
    source: Source, js: Any, count: int, updates: int, subject: str
) -> tuple[float, float]:
    """The service: messages per second from first send until every closed candle is in JetStream,
    and messages per CPU-second this process (the service's one core) spent on them."""
    before = await stored(js, subject)
    closes = count // (updates + 1)
    cpu = time.process_time()
    report = await source.send(count, updates)
    while await stored(js, subject) < before + closes:  # noqa: ASYNC110 (polls the server, no local event)
        await asyncio.sleep(0.005)
    return count / (time.time() - report["sent_at"]), count / (time.process_time() - cpu)


async def measure(nats_url: str, db_url: str) -> dict[str, Any]:
    import nats
    from tradebot.common.v1 import common_pb2
    from tradebot.marketdata.v1 import marketdata_service_pb2 as pb

    from services.common.bus import connect
    from services.common.grpc_server import build_server
    from services.common.runtime import ServiceRuntime
    from services.marketdata.server import CONTROL_SUBJECT, Settings, setup

    source = Source(nats_url)
    if len(CORES) > 1:
        os.sched_setaffinity(0, {CORES[0]})
    try:
        figures: dict[str, Any] = {}
        ceilings: dict[int, dict[str, float]] = {0: {}, 9: {}}
        ceilings_cpu: dict[int, dict[str, float]] = {0: {}, 9: {}}
        for updates in (0, 9):
            for receiver, what in RECEIVERS.items():
                rate, per_cpu = await bare(source, BLAST, updates, receiver)
                ceilings[updates][receiver], ceilings_cpu[updates][receiver] = rate, per_cpu
                print(
                    f"{what}, {updates} updates per close: {rate:,.0f} messages/s "
                    f"({per_cpu:,.0f} per CPU-second)",
                    flush=True,
                )

        settings = Settings(
            database_url=db_url, nats_url=nats_url, bybit_env="simulator", bybit_simulator_url=source.url,
            feed_stale_seconds=3600, marketdata_db_schema="bench",
        )  # fmt: skip
        server, health = build_server(None, ())
        bus = await connect(nats_url, "marketdata")
        runtime = ServiceRuntime("marketdata", settings, server, health, bus)
        await setup(runtime)
        request = pb.EnsureSubscriptionsRequest(caller_id="bench")
        for symbol in symbols():
            request.subscriptions.add(
                category=common_pb2.CATEGORY_LINEAR, symbol=symbol, interval=common_pb2.INTERVAL_1_MINUTE
            )
        await bus.publish(CONTROL_SUBJECT, request, "bench-ensure")
        client = await nats.connect(nats_url)
        js = client.jetstream()
        subject = "md.candle.bybit.linear.>"
        print("service wired; opening streams", flush=True)
        while await stored(js, subject) < STREAMS:  # one closed candle per stream: all streams live
            await source.send(STREAMS)
            await asyncio.sleep(0.5)
        for updates, name in ((0, "every_message_closes_a_candle"), (9, "one_close_per_10_messages")):
            ours, per_cpu = await service_rate(source, js, BLAST, updates, subject)
            ceiling, ceiling_cpu = ceilings[updates], ceilings_cpu[updates]
            baseline = ceiling["pybit_bare"]
            print(
                f"service, {updates} updates per close: {ours:,.0f} messages/s "
                f"({per_cpu:,.0f} per CPU-second); {ours / baseline:.2f}x pybit bare "
                f"({per_cpu / ceiling_cpu['pybit_bare']:.2f}x per CPU-second), "
                f"{ours / ceiling['pybit_fast_path_bare']:.2f}x its fast path bare "
                f"({per_cpu / ceiling_cpu['pybit_fast_path_bare']:.2f}x), "
                f"{ours / ceiling['websocket_client_loop']:.2f}x websocket-client's loop alone "
                f"({per_cpu / ceiling_cpu['websocket_client_loop']:.2f}x)",
                flush=True,
            )
            figures[f"ingest_{name}"] = {
                "service_messages_per_second": round(ours),
                "service_messages_per_cpu_second": round(per_cpu),
                "baseline_pybit_bare_callbacks_per_second": round(baseline),
                "ratio": round(ours / baseline, 3),
                "goal_messages_per_second": 20_000,
                "ratio_per_cpu_second": round(per_cpu / ceiling_cpu["pybit_bare"], 3),
                "ceilings_messages_per_second": {k: round(v) for k, v in ceiling.items()},
                "ceilings_messages_per_cpu_second": {k: round(v) for k, v in ceiling_cpu.items()},
            }
        report = await source.send(PACED, 0, PACED_RATE)
        latencies = sorted(report["latencies_ms"])
        p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
        figures["close_to_nats_latency_ms"] = {
            "p50": round(p50, 3),
            "p99": round(p99, 3),
            "candles": len(latencies),
            "rate_per_second": PACED_RATE,
            "goal_p99_ms": 5.0,
            # The floor any consumer of the exchange pays: pybit's thread hand-off and JSON parse.
            "baseline": "pybit's own receive-to-callback path is inside both figures",
        }
        figures["setup"] = {"streams": STREAMS, "messages_per_run": BLAST, "service_cores": 1}
        for hook in runtime.stop_hooks:
            await hook()
        await client.drain()
        await bus.drain()
        return figures
    finally:
        source.stop()


def main() -> None:
    from bench.results import write_result
    from services.devstack.nats import EmbeddedNats
    from services.devstack.postgres import EmbeddedPostgres

    with tempfile.TemporaryDirectory() as folder:
        nats_server = EmbeddedNats(Path(folder) / "nats").start()
        postgres = EmbeddedPostgres(Path(folder) / "postgres").start()
        try:
            figures = asyncio.run(measure(nats_server.url, postgres.url))
        finally:
            nats_server.stop()
            postgres.stop()
    write_result("marketdata", figures)


if __name__ == "__main__":
    main()
