"""A PPP Vishva backtest over 1,000,000 one-minute candles (seeded random walk), end to end.

End to end = indicators, signals, the fill/stop loop and the metrics (not writing reports). Goal:
>= 3,000,000 candles per second. Baseline, in the same run: a straightforward per-bar Python loop that
feeds each candle to the streaming indicators and applies the same rules and position logic; it runs
over the first BASELINE_N candles and its rate is compared as candles per second (that is the scaling).
"""

from __future__ import annotations

import math
import time

import numpy as np

from bench.indicators import random_walk
from bench.results import write_result
from services.strategy.backtest.engine import BacktestConfig, run_backtest
from services.strategy.candles import from_arrays
from services.strategy.indicators import ATR, EMA, EWO, HeikinAshi, StochRSI, UTBot
from services.strategy.registry import get_strategy
from services.strategy.strategies.base import ParamValues

N = 1_000_000
BASELINE_N = 20_000


def per_bar_loop(op: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, p: ParamValues) -> int:
    """One bar at a time in Python: streaming indicators, rules, next-open fills, stops. Returns trades."""
    ema, atr = EMA(int(p["ema_len"])).stream(), ATR(int(p["atr_len"])).stream()
    ewo, ha = EWO(int(p["ewo_fast"]), int(p["ewo_slow"])).stream(), HeikinAshi().stream()
    stoch = StochRSI(
        int(p["stoch_rsi_len"]), int(p["stoch_len"]), int(p["stoch_k"]), int(p["stoch_d"])
    ).stream()
    ut = UTBot(float(p["ut_key"]), int(p["ut_atr"]), bool(p["ut_use_ha"])).stream()
    k_prev = d_prev = math.nan
    up_age = down_age = math.inf
    side, pending, stop, tp, trades, dist_sig = 0, 0, 0.0, 0.0, 0, 0.0
    for t in range(len(close)):
        o, h, lo, c = op[t], high[t], low[t], close[t]
        if pending:
            side, pending = pending, 0
            stop, tp = o - side * dist_sig, o + side * p["tp_rr"] * dist_sig
        if (side == 1 and (lo <= stop or h >= tp)) or (side == -1 and (h >= stop or lo <= tp)):
            side, trades = 0, trades + 1
        e, a, w = ema.update(c)["value"], atr.update(h, lo, c)["value"], ewo.update(c)["value"]
        s, x, u = stoch.update(c), ha.update(o, h, lo, c), ut.update(o, h, lo, c)
        k, d = s["k"], s["d"]
        up_age = 0 if (k > d and k_prev <= d_prev and k < p["stoch_oversold"]) else up_age + 1
        down_age = 0 if (k < d and k_prev >= d_prev and k > p["stoch_overbought"]) else down_age + 1
        k_prev, d_prev = k, d
        if (side == 1 and u["sell"] == 1.0) or (side == -1 and u["buy"] == 1.0):
            side, trades = 0, trades + 1
        within = p["stoch_lookback"] - 1
        long = (
            c > e
            and u["buy"] == 1.0
            and w > p["ewo_threshold"]
            and up_age <= within
            and x["close"] > x["open"]
        )
        short = (
            c < e
            and u["sell"] == 1.0
            and w < -p["ewo_threshold"]
            and down_age <= within
            and x["close"] < x["open"]
        )
        if side == 0 and (long or short):
            pending, dist_sig = (1 if long else -1), p["sl_atr_mult"] * a
    return trades


def main() -> None:
    op, high, low, close = random_walk(N, seed=7)
    ts = 1_600_000_000_000 + 60_000 * np.arange(N, dtype=np.int64)
    candles = from_arrays(ts, open_=op, high=high, low=low, close=close)
    strategy = get_strategy("ppp_vishva")
    params = strategy.resolve("moderate")
    config = BacktestConfig()
    run_backtest(strategy, candles.head(5_000), params, config)  # load compiled kernels
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = run_backtest(strategy, candles, params, config)
        times.append(time.perf_counter() - start)
    ours_s = sorted(times)[1]
    start = time.perf_counter()
    per_bar_loop(op[:BASELINE_N], high[:BASELINE_N], low[:BASELINE_N], close[:BASELINE_N], params)
    base_s = time.perf_counter() - start
    ours_rate, base_rate = N / ours_s, BASELINE_N / base_s
    write_result(
        "backtest",
        {
            "candles": N,
            "trades": result.metrics["trade_count"],
            "ours_seconds": round(ours_s, 4),
            "ours_candles_per_second": round(ours_rate),
            "baseline": f"per-bar Python loop over streaming indicators, {BASELINE_N} candles, rate scaled",
            "baseline_candles_per_second": round(base_rate),
            "ratio": round(ours_rate / base_rate, 1),
            "goal_candles_per_second_at_least": 3_000_000,
            "goal_met": ours_rate >= 3_000_000,
        },
    )


if __name__ == "__main__":
    main()
