"""True range and ATR (TradingView's `ta.atr`: TR[0] = H-L, then RMA of TR, first value at n-1).

State rows: TR [previous close]; ATR [previous close, RMA state (seen, acc)].
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from services.strategy.indicators.base import FloatArray, Indicator, check_length
from services.strategy.indicators.moving_averages import rma_update


@njit(cache=True, inline="always")
def true_range(high: float, low: float, prev_close: float) -> float:
    if np.isnan(prev_close):
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


@njit(cache=True)
def _tr_one(st: Any, i: int, high: float, low: float, close: float) -> float:
    value = true_range(high, low, st[i, 0])
    st[i, 0] = close
    return value


@njit(cache=True)
def _atr_one(st: Any, i: int, high: float, low: float, close: float, n: int) -> float:
    tr = true_range(high, low, st[i, 0])
    st[i, 0] = close
    st[i, 1], st[i, 2], value = rma_update(st[i, 1], st[i, 2], tr, n)
    return value


@njit(cache=True)
def _tr_batch(high: Any, low: Any, close: Any, init: Any, out: Any) -> None:
    prev = init[0]
    for t in range(close.size):
        out[0, t] = true_range(high[t], low[t], prev)
        prev = close[t]


@njit(cache=True)
def _atr_batch(high: Any, low: Any, close: Any, n: int, init: Any, out: Any) -> None:
    prev, seen, acc = init[0], init[1], init[2]
    for t in range(close.size):
        seen, acc, out[0, t] = rma_update(seen, acc, true_range(high[t], low[t], prev), n)
        prev = close[t]


class TR(Indicator):
    """True range: max(H-L, |H-C[t-1]|, |L-C[t-1]|), H-L on the first bar."""

    name = "tr"
    inputs = ("high", "low", "close")
    step_kernel = staticmethod(_tr_one)
    batch_kernel = staticmethod(_tr_batch)

    def args(self) -> tuple[Any, ...]:
        return ()

    def initial_state(self) -> FloatArray:
        return np.array([np.nan])


class ATR(Indicator):
    """Average true range: RMA(TR, n)."""

    name = "atr"
    inputs = ("high", "low", "close")
    step_kernel = staticmethod(_atr_one)
    batch_kernel = staticmethod(_atr_batch)

    def __init__(self, length: int = 14) -> None:
        self.length = check_length(self.name, "length", length)

    def args(self) -> tuple[Any, ...]:
        return (self.length,)

    def initial_state(self) -> FloatArray:
        return np.array([np.nan, 0.0, 0.0])
