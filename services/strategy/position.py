"""What happens to an open position, decided once for the backtester and the live bank alike.

A position's stop and take-profit sit at fixed distances from its entry fill (`bracket`). Each later bar's
range is checked against them, stop first (`bar_exit`); an exit's reference price is the level, or the bar's
open when the bar opens beyond it (a stop or limit order fills there), before slippage. An exit loses when
its reference price is worse than the entry fill (`losing_exit`): the cooldown rule reads that, and it is
known live the moment the exit is decided. Sides are +1 (long) and -1 (short); 0 is flat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

# Exit reasons, as codes in compiled loops and as names in trades and decisions.
EXIT_REASONS = ("stop_loss", "take_profit", "opposite_signal", "end_of_data")
NO_EXIT, STOP_LOSS, TAKE_PROFIT, OPPOSITE_SIGNAL, END_OF_DATA = -1, 0, 1, 2, 3


@njit(cache=True, inline="always")
def bracket(entry: float, side: int, distance: float, tp_rr: float) -> Any:
    """(stop, take_profit) for an entry at `entry` with the stop `distance` away."""
    return entry - side * distance, entry + side * tp_rr * distance


@njit(cache=True, inline="always")
def bar_exit(side: int, stop: float, take_profit: float, op: float, high: float, low: float) -> Any:
    """(reason code, reference price) for a position over one bar; NO_EXIT and NaN when it stays open."""
    if side == 1:
        if low <= stop:
            return STOP_LOSS, min(op, stop)
        if high >= take_profit:
            return TAKE_PROFIT, max(op, take_profit)
    elif side == -1:
        if high >= stop:
            return STOP_LOSS, max(op, stop)
        if low <= take_profit:
            return TAKE_PROFIT, min(op, take_profit)
    return NO_EXIT, np.nan


@njit(cache=True, inline="always")
def losing_exit(side: int, entry: float, exit_price: float) -> bool:
    return side * (exit_price - entry) < 0.0


@njit(cache=True)
def bar_exits(side: Any, stop: Any, take_profit: Any, op: float, high: float, low: float) -> Any:
    """`bar_exit` for many positions at once (arrays over bots): (reason codes, reference prices)."""
    reasons = np.empty(side.size, dtype=np.int64)
    prices = np.empty(side.size)
    for i in range(side.size):
        reasons[i], prices[i] = bar_exit(side[i], stop[i], take_profit[i], op, high, low)
    return reasons, prices
