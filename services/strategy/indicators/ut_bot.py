"""UT Bot: an ATR trailing stop on the close (or the Heikin Ashi close) with buy/sell on crossing it.

State of the trailing stop: the previous source and the previous stop (NaN while undefined). The
stand-alone indicator's row is [previous close, ATR (seen, acc), HA open, HA close, source, stop].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from services.strategy.indicators.base import FloatArray, Indicator, check_length
from services.strategy.indicators.heikin_ashi import heikin_ashi_update
from services.strategy.indicators.moving_averages import rma_update
from services.strategy.indicators.volatility import true_range

NAN = np.nan


@njit(cache=True, inline="always")
def ut_update(prev_src: float, prev_stop: float, src: float, atr: float, key: float) -> Any:
    """(stop, buy, sell) for this bar, buy and sell as 1.0 or 0.0; the new state is (src, stop)."""
    if np.isnan(atr):
        return NAN, 0.0, 0.0
    loss = key * atr
    p = 0.0 if np.isnan(prev_stop) else prev_stop
    if src > p and prev_src > p:
        stop = max(p, src - loss)
    elif src < p and prev_src < p:
        stop = min(p, src + loss)
    elif src > p:
        stop = src - loss
    else:
        stop = src + loss
    buy = 1.0 if (src > stop and prev_src <= prev_stop) else 0.0
    sell = 1.0 if (src < stop and prev_src >= prev_stop) else 0.0
    return stop, buy, sell


@njit(cache=True)
def _ut_one(
    st: Any, i: int, op: float, high: float, low: float, close: float, key: float, n: int, use_ha: bool
) -> Any:
    tr = true_range(high, low, st[i, 0])
    st[i, 0] = close
    st[i, 1], st[i, 2], atr = rma_update(st[i, 1], st[i, 2], tr, n)
    ha = heikin_ashi_update(st[i, 3], st[i, 4], op, high, low, close)
    st[i, 3] = ha[0]
    st[i, 4] = ha[3]
    src = ha[3] if use_ha else close
    result = ut_update(st[i, 5], st[i, 6], src, atr, key)
    st[i, 5] = src
    st[i, 6] = result[0]
    return result


@njit(cache=True)
def _ut_batch(
    op: Any, high: Any, low: Any, close: Any, key: float, n: int, use_ha: bool, init: Any, out: Any
) -> None:
    prev_close, seen, acc, ha_open, ha_close, prev_src, prev_stop = (
        init[0],
        init[1],
        init[2],
        init[3],
        init[4],
        init[5],
        init[6],
    )
    for t in range(close.size):
        seen, acc, atr = rma_update(seen, acc, true_range(high[t], low[t], prev_close), n)
        prev_close = close[t]
        ha_open, _, _, ha_close = heikin_ashi_update(ha_open, ha_close, op[t], high[t], low[t], close[t])
        src = ha_close if use_ha else close[t]
        stop, out[1, t], out[2, t] = ut_update(prev_src, prev_stop, src, atr, key)
        out[0, t] = stop
        prev_src = src
        prev_stop = stop


class UTBot(Indicator):
    """UT Bot alerts: trailing stop `stop`, and `buy`/`sell` (1.0 on the bar the source crosses it)."""

    name = "ut_bot"
    inputs = ("open", "high", "low", "close")
    outputs = ("stop", "buy", "sell")
    step_kernel = staticmethod(_ut_one)
    batch_kernel = staticmethod(_ut_batch)

    def __init__(self, key: float = 2.0, atr_length: int = 10, use_heikin_ashi: bool = False) -> None:
        if isinstance(key, bool) or not isinstance(key, int | float) or not key > 0:
            raise ValueError(f"ut_bot.key: must be a number > 0, got {key!r}")
        self.key = float(key)
        self.atr_length = check_length(self.name, "atr_length", atr_length)
        self.use_heikin_ashi = bool(use_heikin_ashi)

    def args(self) -> tuple[Any, ...]:
        return (self.key, self.atr_length, self.use_heikin_ashi)

    def initial_state(self) -> FloatArray:
        return np.array([np.nan, 0.0, 0.0, np.nan, np.nan, np.nan, np.nan])
