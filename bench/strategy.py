"""The strategy service's engine at scale: 10,000 bots with distinct parameters over 100 symbols (100
bots per symbol), through the real consumer path. Closed candles for all 100 symbols are published on
NATS at once (as a minute closes on every symbol together), the engine consumes them from a durable
JetStream consumer, evaluates each symbol's bots together and publishes signals on `sig.>`, recording
them in PostgreSQL. A subscriber times each signal from its candle's publication.

Goals: candle-to-signal p99 <= 50 ms and resident memory <= 1 GiB. Baseline, in the same run: bots as a
single-user design runs them, recomputing each bot's indicators and rules over a 500-bar window on
every candle; measured on BASELINE_BOTS bots and scaled to the same round of 100 symbols x 100 bots
(a symbol's signals are ready when its 100 bots have been recomputed, symbols one after another).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from tradebot.common.v1 import common_pb2
from tradebot.marketdata.v1 import events_pb2 as md_events
from tradebot.strategy.v1 import events_pb2

from bench.indicators import random_walk
from bench.results import write_result
from services.common import bus as bus_module
from services.common.db import make_engine, migrate
from services.strategy.candles import from_arrays
from services.strategy.engine import Engine, LiveBot, Subscriptions
from services.strategy.journal import Journal
from services.strategy.market import CandleBatch, StreamKey
from services.strategy.registry import get_strategy
from services.strategy.server import MIGRATIONS
from services.strategy.signals import BotRef, SignalPublisher
from services.strategy.sizing import Instrument
from services.strategy.strategies.base import ParamValues

SYMBOLS = 100
BOTS_PER_SYMBOL = 100
HISTORY = 700
ROUNDS = 40
WINDOW = 500
BASELINE_BOTS = 200
MINUTE = 60_000
T0 = 1_700_000_000_000


def bot_params(i: int) -> ParamValues:
    """Every bot of a symbol differs in its indicator parameters (no sharing: the worst case)."""
    template = ("conservative", "moderate", "aggressive")[i % 3]
    return get_strategy("ppp_vishva").resolve(
        template, {"ema_len": 20 + i, "ut_key": 0.8 + (i % 7) * 0.2, "stoch_oversold": 15 + i % 10}
    )


class BenchMarket:
    """Marketdata's part for the engine: history for warm-up, instruments, live streams."""

    def __init__(self, bars: Mapping[str, tuple[np.ndarray, ...]]) -> None:
        self.bars = bars

    async def instrument(self, category: str, symbol: str) -> Instrument:
        return Instrument(
            symbol=symbol, qty_step=Decimal("0.001"), min_qty=Decimal("0.001"), min_notional=Decimal(5)
        )

    async def candles(self, key: StreamKey, start_ms: int | None, end_ms: int | None) -> CandleBatch:
        o, h, lo, c = self.bars[key.symbol]
        starts = T0 + MINUTE * np.arange(HISTORY, dtype=np.int64)
        keep = (starts >= (start_ms or 0)) & (starts < (end_ms or 1 << 62))
        return CandleBatch(
            starts[keep],
            o[:HISTORY][keep],
            h[:HISTORY][keep],
            lo[:HISTORY][keep],
            c[:HISTORY][keep],
            np.ones(int(keep.sum())),
        )

    async def ensure_subscriptions(
        self, caller_id: str, keys: list[StreamKey]
    ) -> dict[StreamKey, int | None]:
        return {k: T0 + MINUTE * (HISTORY - 1) for k in keys}


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def measure(nats_url: str, db_url: str) -> dict[str, Any]:
    symbols = [f"B{i:03d}USDT" for i in range(SYMBOLS)]
    bars = {s: random_walk(HISTORY + ROUNDS, seed=i) for i, s in enumerate(symbols)}
    await asyncio.to_thread(migrate, MIGRATIONS, db_url, "strategy_bench")
    db = make_engine(db_url, "strategy_bench", pool_size=10)
    bus = await bus_module.connect(nats_url, "strategy-bench")
    market: Any = BenchMarket(bars)
    journal = Journal(db)
    journal.start()
    engine = Engine(market, SignalPublisher(bus), journal, Subscriptions(market, "bench"))
    params = [bot_params(i) for i in range(BOTS_PER_SYMBOL)]
    bots = [
        LiveBot(
            BotRef(f"bot-{s}-{i:03d}", f"tenant-{i % 50}", "ppp_vishva", "linear", s, "1", "paper"),
            params[i], Decimal(10_000), "running", None,
        )
        for s in symbols for i in range(BOTS_PER_SYMBOL)
    ]  # fmt: skip
    rss_before = rss_mib()
    started = time.perf_counter()
    engine.set_bots(bots)
    while engine.bots_running() < len(bots):  # noqa: ASYNC110 (polling the engine's own count)
        await asyncio.sleep(0.05)
    warmup_s = time.perf_counter() - started
    rss_warm = rss_mib()

    published: dict[tuple[str, int], float] = {}
    latencies: list[float] = []

    async def on_signal(msg: object) -> None:
        sig = events_pb2.Signal.FromString(msg.data)  # type: ignore[attr-defined]
        latencies.append(time.perf_counter() - published[(sig.symbol, sig.candle_start.ToMilliseconds())])

    await bus.client.subscribe("sig.>", cb=on_signal)
    bus.consume("MARKETDATA", "strategy-bench", "md.candle.>", md_events.CandleClosed, engine.on_candle)
    evaluated: list[float] = []
    for r in range(ROUNDS):
        t = HISTORY + r
        start = T0 + MINUTE * t
        for s in symbols:
            o, h, lo, c = bars[s]
            event = md_events.CandleClosed(event_id=f"linear.{s}.1.{start}")
            candle = event.candle
            candle.category, candle.symbol, candle.interval = (
                common_pb2.CATEGORY_LINEAR,
                s,
                common_pb2.INTERVAL_1_MINUTE,
            )
            candle.start.FromMilliseconds(start)
            candle.open, candle.high, candle.low, candle.close = (repr(float(x[t])) for x in (o, h, lo, c))
            candle.volume, candle.confirmed = "1", True
            published[(s, start)] = time.perf_counter()
            await bus.publish(f"md.candle.bybit.linear.{s}.1", event, event.event_id)
        round_start = published[(symbols[0], start)]
        while any(g.last_ms != start for g in engine.groups.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        evaluated.append(time.perf_counter() - round_start)
        await asyncio.sleep(0.2)
    rss_end = rss_mib()
    await journal.stop()
    await bus.drain()
    db.dispose()
    return {
        "latencies": latencies,
        "round_seconds": evaluated,
        "warmup_seconds": warmup_s,
        "rss_mib": {"before_bots": rss_before, "warm": rss_warm, "end": rss_end},
        "bars": bars,
        "params": params,
    }


def baseline(bars: tuple[np.ndarray, ...], params: list[ParamValues]) -> float:
    """Seconds for one bot's evaluation as a single-user bot does it: indicators and rules over 500 bars."""
    strategy = get_strategy("ppp_vishva")
    o, h, lo, c = (x[-WINDOW:] for x in bars)
    candles = from_arrays(T0 + MINUTE * np.arange(WINDOW), open_=o, high=h, low=lo, close=c)
    p = params[: min(len(params), 50)]
    strategy.signals(candles, strategy.indicators(candles, p[0]), p[0], shorts_allowed=True)  # compiled
    times = []
    for _ in range(BASELINE_BOTS // len(p)):
        for q in p:
            began = time.perf_counter()
            strategy.signals(candles, strategy.indicators(candles, q), q, shorts_allowed=True)
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    from services.devstack.nats import EmbeddedNats
    from services.devstack.postgres import EmbeddedPostgres

    with tempfile.TemporaryDirectory() as folder:
        nats_server = EmbeddedNats(Path(folder) / "nats").start()
        postgres = EmbeddedPostgres(Path(folder) / "postgres").start()
        try:
            got = asyncio.run(measure(nats_server.url, postgres.url))
        finally:
            nats_server.stop()
            postgres.stop()
    per_bot = baseline(got["bars"]["B000USDT"], got["params"])
    # Single-user bots: symbol k's signals are ready once k x 100 bots have been recomputed.
    base_latencies = [per_bot * BOTS_PER_SYMBOL * (k + 1) for k in range(SYMBOLS)]
    latencies: list[float] = got["latencies"]
    rss = got["rss_mib"]
    window_bytes = WINDOW * 5 * 8  # OHLCV window a single-user bot keeps, before its indicator columns
    base_rss = rss["before_bots"] + SYMBOLS * BOTS_PER_SYMBOL * (window_bytes + 14 * WINDOW * 8) / 2**20
    p50, p99 = pct(latencies, 50), pct(latencies, 99)
    b50, b99 = pct(base_latencies, 50), pct(base_latencies, 99)
    end_rss = rss["end"]
    write_result(
        "strategy",
        {
            "bots": SYMBOLS * BOTS_PER_SYMBOL,
            "symbols": SYMBOLS,
            "rounds": ROUNDS,
            "signals_timed": len(latencies),
            "candle_to_signal_p50_ms": {"figure": p50, "baseline": b50, "ratio": b50 / p50},
            "candle_to_signal_p99_ms": {
                "figure": p99, "baseline": b99, "ratio": b99 / p99, "goal": 50.0, "goal_met": p99 <= 50.0
            },
            "round_all_symbols_evaluated_p50_ms": pct(got["round_seconds"], 50),
            "resident_memory_mib": {
                "figure": end_rss, "baseline": base_rss, "ratio": base_rss / end_rss, "goal": 1024,
                "goal_met": end_rss <= 1024, "before_bots": rss["before_bots"], "after_warmup": rss["warm"],
            },
            "warmup_seconds_all_groups": got["warmup_seconds"],
            "baseline_ms_per_bot_500_bar_recompute": per_bot * 1000,
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
