"""PPP Vishva entry rules, written once over arrays.

The same functions serve a backtest (arrays over time, scalar parameters) and a live step (arrays
over bots, per-bot parameter arrays): every comparison is elementwise. Only the age of the last
qualifying StochRSI cross is path dependent; batch and live each carry it their own way
(`cross_age_batch` here, a per-bot counter in the live kernel).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Num = Any  # a float or a per-bot float array

LONG_CONDITIONS = (
    "close_above_ema",
    "ut_buy",
    "ewo_above_threshold",
    "stoch_cross_up_oversold",
    "ha_bullish",
)
SHORT_CONDITIONS = (
    "close_below_ema",
    "ut_sell",
    "ewo_below_threshold",
    "stoch_cross_down_overbought",
    "ha_bearish",
)
REASON_VALUES = (
    "close",
    "ema",
    "ewo",
    "stochrsi_k",
    "stochrsi_d",
    "ut_stop",
    "ha_open",
    "ha_close",
    "atr_sl",
)


def stoch_crosses(
    k: FloatArray, d: FloatArray, k_prev: FloatArray, d_prev: FloatArray, oversold: Num, overbought: Num
) -> tuple[BoolArray, BoolArray]:
    """(K crossed over D below oversold, K crossed under D above overbought) at this bar."""
    up = (k > d) & (k_prev <= d_prev) & (k < oversold)
    down = (k < d) & (k_prev >= d_prev) & (k > overbought)
    return up, down


def cross_age_batch(crossed: BoolArray) -> FloatArray:
    """Bars since the last True (0 on that bar), inf before the first."""
    idx = np.arange(crossed.size, dtype=np.float64)
    last = np.maximum.accumulate(np.where(crossed, idx, -np.inf))
    return idx - last


def conditions(
    cols: Mapping[str, Any], close: Any, up_age: Any, down_age: Any, p: Mapping[str, Num]
) -> tuple[dict[str, BoolArray], dict[str, BoolArray]]:
    """Every long and short condition of the spec (rules 1-5) by name. Rule 6 (flat) and the cooldown
    belong to whoever holds the position (backtester or live bank)."""
    within = p["stoch_lookback"] - 1
    ha_confirm = np.asarray(p["ha_confirm"], dtype=bool)
    long = {
        "close_above_ema": close > cols["ema"],
        "ut_buy": cols["ut_buy"] == 1.0,
        "ewo_above_threshold": cols["ewo"] > p["ewo_threshold"],
        "stoch_cross_up_oversold": up_age <= within,
        "ha_bullish": ~ha_confirm | (cols["ha_close"] > cols["ha_open"]),
    }
    short = {
        "close_below_ema": close < cols["ema"],
        "ut_sell": cols["ut_sell"] == 1.0,
        "ewo_below_threshold": cols["ewo"] < -p["ewo_threshold"],
        "stoch_cross_down_overbought": down_age <= within,
        "ha_bearish": ~ha_confirm | (cols["ha_close"] < cols["ha_open"]),
    }
    return long, short


def all_hold(conds: Mapping[str, BoolArray]) -> BoolArray:
    result: BoolArray | None = None
    for value in conds.values():
        result = value if result is None else result & value
    assert result is not None
    return np.asarray(result, dtype=bool)
