"""Heikin Ashi candles. State: the previous HA open and close (NaN before the first bar)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from services.strategy.indicators.base import FloatArray, Indicator


@njit(cache=True, inline="always")
def heikin_ashi_update(
    prev_open: float, prev_close: float, op: float, high: float, low: float, close: float
) -> Any:
    """(HA open, HA high, HA low, HA close); the new state is (HA open, HA close)."""
    ha_close = (op + high + low + close) / 4.0
    ha_open = (op + close) / 2.0 if np.isnan(prev_open) else (prev_open + prev_close) / 2.0
    return ha_open, max(high, ha_open, ha_close), min(low, ha_open, ha_close), ha_close


@njit(cache=True)
def _ha_one(st: Any, i: int, op: float, high: float, low: float, close: float) -> Any:
    ha = heikin_ashi_update(st[i, 0], st[i, 1], op, high, low, close)
    st[i, 0] = ha[0]
    st[i, 1] = ha[3]
    return ha


@njit(cache=True)
def _ha_batch(op: Any, high: Any, low: Any, close: Any, init: Any, out: Any) -> None:
    prev_open, prev_close = init[0], init[1]
    for t in range(close.size):
        prev_open, out[1, t], out[2, t], prev_close = heikin_ashi_update(
            prev_open, prev_close, op[t], high[t], low[t], close[t]
        )
        out[0, t] = prev_open
        out[3, t] = prev_close


def heikin_ashi_state() -> FloatArray:
    return np.array([np.nan, np.nan])


class HeikinAshi(Indicator):
    """HAc = (O+H+L+C)/4; HAo = mean of the previous HA open and close; HAh/HAl include HAo and HAc."""

    name = "heikin_ashi"
    inputs = ("open", "high", "low", "close")
    outputs = ("open", "high", "low", "close")
    step_kernel = staticmethod(_ha_one)
    batch_kernel = staticmethod(_ha_batch)

    def args(self) -> tuple[Any, ...]:
        return ()

    def initial_state(self) -> FloatArray:
        return heikin_ashi_state()
