"""The full PPP Vishva indicator set over 1,000,000 candles against TA-Lib's subset (EMA, ATR, RSI, STOCHRSI).

Goal: ours / TA-Lib <= 1.5. Both run in the same process on the same seeded random walk; each figure
is the median of several runs after a warm-up call (which also loads the compiled kernels).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import talib

from bench.results import write_result
from services.strategy.strategies.ppp_vishva.indicator_set import compute
from services.strategy.strategies.ppp_vishva.params import TEMPLATES

N = 1_000_000
RUNS = 7


def random_walk(n: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    op = np.r_[100.0, close[:-1]]
    wick = np.abs(rng.normal(0, 0.0005, (2, n)))
    return op, np.maximum(op, close) * (1 + wick[0]), np.minimum(op, close) * (1 - wick[1]), close


def median_seconds(fn: Callable[[], object]) -> float:
    fn()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    op, high, low, close = random_walk(N)
    from services.strategy.registry import get_strategy

    params = get_strategy("ppp_vishva").resolve("moderate")
    assert dict(TEMPLATES["moderate"]).items() <= params.items()

    def ours() -> None:
        compute(op, high, low, close, params)

    def baseline() -> None:
        talib.EMA(close, 100)
        talib.ATR(high, low, close, 14)
        talib.RSI(close, 14)
        talib.STOCHRSI(close, 14, 14, 3, talib.MA_Type.SMA)

    ours_s = median_seconds(ours)
    base_s = median_seconds(baseline)
    write_result(
        "indicators",
        {
            "candles": N,
            "ours_seconds": round(ours_s, 5),
            "ours_scope": "ema, atr_sl, atr_ut, rsi, stochrsi k/d, ewo, HA (4), UT Bot stop/buy/sell",
            "baseline_seconds": round(base_s, 5),
            "baseline_scope": "talib EMA(100), ATR(14), RSI(14), STOCHRSI(14,14,3,SMA)",
            "ratio": round(ours_s / base_s, 3),
            "goal_ratio_at_most": 1.5,
            "goal_met": ours_s / base_s <= 1.5,
        },
    )


if __name__ == "__main__":
    main()
