"""The marketdata service as a real process against a simulator, and ground truth to check it by."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from nats.js import JetStreamContext
from tradebot.common.v1 import common_pb2
from tradebot.marketdata.v1 import events_pb2
from tradebot.marketdata.v1 import marketdata_service_pb2 as pb

from services.common import bus as bus_module
from services.devstack.platform import REPO, grpc_health
from services.exchangesim.app import SimConfig, Simulator
from services.exchangesim.instruments import fmt
from services.exchangesim.wire import money
from tests.helpers.infra import Infra


def unique_symbol() -> str:
    """A symbol no other test uses, so NATS subjects and stored rows never collide."""
    return f"T{uuid.uuid4().hex[:8].upper()}USDT"


async def start_sim(symbol: str) -> Simulator:
    """A paused simulator with one random-walk instrument, 60-minute base candles and 200 of history."""
    sim = Simulator(
        SimConfig(port=0, paused=True, data_files=(), random_walk={symbol: Decimal("100")}, seed=3)
    )
    await sim.start()
    return sim


async def eventually(check: Callable[[], object], within: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class MarketdataProcess:
    infra: Infra
    sim: Simulator
    logs: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    schema: str = field(default_factory=lambda: f"md_{uuid.uuid4().hex[:10]}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ready_file(self) -> Path:
        return self.logs / f"marketdata-{self.schema}.ready.json"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.infra.env,
            "VAULT_ADDR": "",
            "BYBIT_ENV": "simulator",
            "BYBIT_SIMULATOR_URL": self.sim.http_url,
            "MARKETDATA_DB_SCHEMA": self.schema,
            "CONTROL_DURABLE": f"control-{self.schema}",
            "BACKFILL_CANDLES": "50",
            "FEED_STALE_SECONDS": "30",
            "GRPC_PORT": "0",
            "METRICS_PORT": "0",
            "READY_FILE": str(self.ready_file),
            **self.extra_env,
        }

    async def start(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        log = (self.logs / f"marketdata-{self.schema}.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the wait below is async)
            [sys.executable, "-m", "services.marketdata"], cwd=REPO, env=self.env(), stdout=log, stderr=log
        )
        await eventually(lambda: self.ready_file.exists() or self.proc.poll() is not None, 60, "ready file")  # type: ignore[union-attr]
        assert self.proc.poll() is None, (self.logs / f"marketdata-{self.schema}.log").read_text()[-3000:]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{json.loads(self.ready_file.read_text())['grpc_port']}"

    async def health(self) -> str:
        return await asyncio.to_thread(grpc_health, self.address)

    async def health_is(self, status: str) -> bool:
        return await self.health() == status

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, nothing flushed (crash-only)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def ensure_over_nats(infra: Infra, caller: str, keys: list[tuple[str, str]]) -> None:
    """Subscribe through the control subject (what a platform service does without gRPC)."""
    categories = {"linear": common_pb2.CATEGORY_LINEAR, "spot": common_pb2.CATEGORY_SPOT}
    intervals = {"1": common_pb2.INTERVAL_1_MINUTE, "5": common_pb2.INTERVAL_5_MINUTES}
    request = pb.EnsureSubscriptionsRequest(caller_id=caller)
    for symbol, interval in keys:
        request.subscriptions.add(
            category=categories["linear"],
            symbol=symbol,
            interval=intervals[interval],
        )
    request.lease_ttl.FromSeconds(600)
    bus = await bus_module.connect(infra.nats.url, "test")
    await bus.publish("md.control.subscriptions", request, f"{caller}.{time.time_ns()}")
    await bus.drain()


async def published(js: JetStreamContext, subject: str) -> list[events_pb2.CandleClosed]:
    """Every candle event stored on `subject`, in stream order."""
    info = await js.stream_info("MARKETDATA", subjects_filter=subject)
    total = (info.state.subjects or {}).get(subject, 0)
    if not total:
        return []
    sub = await js.subscribe(subject, ordered_consumer=True)
    events: list[events_pb2.CandleClosed] = []
    try:
        while len(events) < total:
            msg = await sub.next_msg(timeout=5)
            events.append(events_pb2.CandleClosed.FromString(msg.data))
    finally:
        await sub.unsubscribe()
    return events


def truth(sim: Simulator, symbol: str, interval: str, start: int) -> tuple[str, ...]:
    """The simulator's closed candle at `start` as (open, high, low, close, volume, turnover) strings."""
    bar = sim.venue.market.bar_at(symbol, interval, start)
    assert bar is not None
    return (fmt(bar.open), fmt(bar.high), fmt(bar.low), fmt(bar.close), fmt(bar.volume), money(bar.turnover))


def as_tuple(event: events_pb2.CandleClosed) -> tuple[str, ...]:
    c = event.candle
    return (c.open, c.high, c.low, c.close, c.volume, c.turnover)


def assert_exactly_once_in_order(
    sim: Simulator, symbol: str, interval: str, events: list[events_pb2.CandleClosed], minutes: int
) -> None:
    """Consecutive starts, no repeats, values equal to the simulator's, up to its newest closed candle."""
    step = minutes * 60_000
    starts = [e.candle.start.ToMilliseconds() for e in events]
    assert starts, "nothing published"
    assert starts == list(range(starts[0], starts[0] + step * len(starts), step)), starts
    now = sim.venue.market.now_ms()
    assert starts[-1] == now - now % step - step, "the newest closed candle is missing"
    for event, start in zip(events, starts, strict=True):
        assert event.event_id == f"linear.{symbol}.{interval}.{start}"
        assert event.candle.confirmed
        assert as_tuple(event) == truth(sim, symbol, interval, start), start
