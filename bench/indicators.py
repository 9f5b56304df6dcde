"""The full PPP Vishva indicator set over 1,000,000 candles against TA-Lib's subset (EMA, ATR, RSI, STOCHRSI).

Goal: ours / TA-Lib <= 1.5. Both run in the same process on the same seeded random walk, after a warm-up
call each (compilation and loading are excluded); the rounds alternate between the two so that load from
other processes falls on both alike. Each side returns every output it computed and holds them until its
call ends, as a consumer of the whole set would: ours 14 columns, TA-Lib 5 arrays. The ratio is taken of
the medians; the best runs are reported too. Per-indicator timings show where the time goes.

Allocator state: TA-Lib's STOCHRSI mallocs 8 MB temporaries on every call. Whether glibc serves them
from fresh pages (thousands of page faults, ~10 ms) or reuses freed memory depends on the process's
allocation history (glibc raises its mmap threshold when a large block is freed). One 32 MB allocation
and release before timing puts the process in the steady state of a long-running service, the one most
favourable to TA-Lib; page faults per call are reported for both sides.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import talib

from bench.results import write_result
from services.strategy.indicators import ATR, EMA, EWO, HeikinAshi, StochRSI, UTBot
from services.strategy.registry import get_strategy
from services.strategy.strategies.ppp_vishva.indicator_set import compute
from services.strategy.strategies.ppp_vishva.params import TEMPLATES

N = 1_000_000
ROUNDS = 21
PART_ROUNDS = 7


def random_walk(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    op = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0, 0.0005, (2, n)))
    return op, np.maximum(op, close) * (1 + wick[0]), np.minimum(op, close) * (1 - wick[1]), close


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def side_by_side(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call for each function, after one warm-up call each, the functions taking turns."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return times


def faults_per_call(fn: Callable[[], object]) -> int:
    before = page_faults()
    fn()
    return page_faults() - before


def main() -> None:
    op, high, low, close = random_walk(N)
    params = get_strategy("ppp_vishva").resolve("moderate")
    assert dict(TEMPLATES["moderate"]).items() <= params.items()

    def ours() -> object:
        return compute(op, high, low, close, params)

    def baseline() -> object:
        return (
            talib.EMA(close, 100),
            talib.ATR(high, low, close, 14),
            talib.RSI(close, 14),
            talib.STOCHRSI(close, 14, 14, 3, talib.MA_Type.SMA),
        )

    released = np.ones(4_000_000)  # 32 MB: see "Allocator state" above
    del released
    times = side_by_side({"ours": ours, "baseline": baseline}, ROUNDS)
    ours_s, base_s = statistics.median(times["ours"]), statistics.median(times["baseline"])
    ours_best, base_best = min(times["ours"]), min(times["baseline"])

    parts = side_by_side(
        {
            "ema(100)": lambda: EMA(100).batch(close),
            "atr(14)": lambda: ATR(14).batch(high, low, close),
            "stochrsi(14,14,3,3) incl. rsi": lambda: StochRSI(14, 14, 3, 3).batch(close),
            "ewo(5,35)": lambda: EWO(5, 35).batch(close),
            "heikin_ashi": lambda: HeikinAshi().batch(op, high, low, close),
            "ut_bot(2,10) incl. atr, ha": lambda: UTBot(2.0, 10, False).batch(op, high, low, close),
            "talib EMA(100)": lambda: talib.EMA(close, 100),
            "talib ATR(14)": lambda: talib.ATR(high, low, close, 14),
            "talib RSI(14)": lambda: talib.RSI(close, 14),
            "talib STOCHRSI(14,14,3)": lambda: talib.STOCHRSI(close, 14, 14, 3, talib.MA_Type.SMA),
        },
        PART_ROUNDS,
    )
    write_result(
        "indicators",
        {
            "candles": N,
            "ours_seconds": round(ours_s, 5),
            "ours_best_seconds": round(ours_best, 5),
            "ours_scope": "ema, atr_sl, atr_ut, rsi, stochrsi k/d, ewo, HA (4), UT Bot stop/buy/sell",
            "baseline_seconds": round(base_s, 5),
            "baseline_best_seconds": round(base_best, 5),
            "baseline_scope": "talib EMA(100), ATR(14), RSI(14), STOCHRSI(14,14,3,SMA)",
            "ratio": round(ours_s / base_s, 3),
            "ratio_of_best": round(ours_best / base_best, 3),
            "goal_ratio_at_most": 1.5,
            "goal_met": ours_s / base_s <= 1.5,
            "page_faults_per_call": {"ours": faults_per_call(ours), "baseline": faults_per_call(baseline)},
            "stand_alone_median_ms": {k: round(statistics.median(t) * 1e3, 2) for k, t in parts.items()},
            "note": (
                f"median and best of {ROUNDS} alternating rounds after a warm-up call each; outputs held "
                "until each call returns; allocator in its steady state (see bench/indicators.py)"
            ),
        },
    )


if __name__ == "__main__":
    main()
