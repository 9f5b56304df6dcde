"""SMA, EMA and RMA (Wilder's average): the averages every other family builds on.

State:
- SMA(n): a row [bars seen, write position, ring buffer of the last n inputs] at offset `o`
- EMA/RMA(n): (seen, acc) = valid inputs seen during warm-up (n once seeded), running sum then the
  average. These steps are pure functions of their state so that compiled loops keep it in registers.

The EMA family is seeded with the SMA of the first n values and skips leading NaNs (so RSI's averages,
whose inputs start at bar 1, are seeded at bar n). SMA sums its window oldest first, starting from 0.0.

The small update functions are inlined into every compiled loop that calls them (`inline="always"`):
a call that LLVM does not inline passes its state through memory and makes a loop several times slower,
and whether it inlines depends on which callee happened to be loaded from Numba's cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from services.strategy.indicators.base import FloatArray, Indicator, check_length

NAN = np.nan


def sma_state(n: int) -> FloatArray:
    return np.zeros(2 + n)


def ewm_state() -> FloatArray:
    return np.zeros(2)


@njit(cache=True)
def sma_step(st: Any, i: int, o: int, x: float, n: int) -> float:
    pos = int(st[i, o + 1])
    st[i, o + 2 + pos] = x
    pos += 1
    if pos == n:
        pos = 0
    st[i, o + 1] = pos
    seen = st[i, o] + 1.0
    st[i, o] = seen
    if seen < n:
        return NAN
    total = 0.0
    for j in range(pos, n):
        total += st[i, o + 2 + j]
    for j in range(pos):
        total += st[i, o + 2 + j]
    return total / n


# Bars per block of the batch SMA: its window sums stay in the L1 cache while they are accumulated.
_SMA_BLOCK = 1024


@njit(cache=True)
def sma_series(x: Any, n: int, out: Any) -> None:
    """The batch form of `sma_step`: out[t] = SMA of x[t-n+1..t], NaN before t = n-1 (`out` is not `x`).

    Every sum runs oldest first from 0.0 as `sma_step` does, so both agree exactly; it is accumulated
    one window position at a time across a block of bars, which the compiler turns into vector code.
    """
    size = x.size
    for start in range(0, size, _SMA_BLOCK):
        end = min(size, start + _SMA_BLOCK)
        first = min(end, max(start, n - 1))
        out[start:first] = NAN
        sums = out[first:end]
        sums[:] = 0.0
        for age in range(n - 1, -1, -1):
            older = x[first - age : end - age]
            for t in range(sums.size):
                sums[t] += older[t]
        for t in range(sums.size):
            sums[t] /= n


@njit(cache=True, inline="always")
def ewm_update(seen: float, acc: float, x: float, n: int, alpha: float) -> Any:
    """One EMA-family step on the state (seen, acc); returns (seen, acc, value)."""
    if seen >= n:
        acc = alpha * x + (1.0 - alpha) * acc
        return seen, acc, acc
    if np.isnan(x):
        return 0.0, 0.0, NAN
    seen += 1.0
    acc += x
    if seen < n:
        return seen, acc, NAN
    acc = acc / n
    return seen, acc, acc


@njit(cache=True, inline="always")
def ema_update(seen: float, acc: float, x: float, n: int) -> Any:
    return ewm_update(seen, acc, x, n, 2.0 / (n + 1.0))


@njit(cache=True, inline="always")
def rma_update(seen: float, acc: float, x: float, n: int) -> Any:
    return ewm_update(seen, acc, x, n, 1.0 / n)


@njit(cache=True)
def _sma_batch(x: Any, n: int, init: Any, out: Any) -> None:
    sma_series(x, n, out[0])


@njit(cache=True)
def _ema_batch(x: Any, n: int, init: Any, out: Any) -> None:
    seen, acc = init[0], init[1]
    for t in range(x.size):
        seen, acc, out[0, t] = ema_update(seen, acc, x[t], n)


@njit(cache=True)
def _rma_batch(x: Any, n: int, init: Any, out: Any) -> None:
    seen, acc = init[0], init[1]
    for t in range(x.size):
        seen, acc, out[0, t] = rma_update(seen, acc, x[t], n)


@njit(cache=True)
def _sma_one(st: Any, i: int, x: float, n: int) -> float:
    return sma_step(st, i, 0, x, n)


@njit(cache=True)
def _ema_one(st: Any, i: int, x: float, n: int) -> float:
    st[i, 0], st[i, 1], value = ema_update(st[i, 0], st[i, 1], x, n)
    return value


@njit(cache=True)
def _rma_one(st: Any, i: int, x: float, n: int) -> float:
    st[i, 0], st[i, 1], value = rma_update(st[i, 0], st[i, 1], x, n)
    return value


class _Average(Indicator):
    inputs = ("x",)
    outputs = ("value",)

    def __init__(self, length: int) -> None:
        self.length = check_length(self.name, "length", length)

    def args(self) -> tuple[Any, ...]:
        return (self.length,)

    def initial_state(self) -> FloatArray:
        return ewm_state()


class SMA(_Average):
    """Mean of the last n values; first value at t = n-1."""

    name = "sma"
    step_kernel = staticmethod(_sma_one)
    batch_kernel = staticmethod(_sma_batch)

    def initial_state(self) -> FloatArray:
        return sma_state(self.length)


class EMA(_Average):
    """alpha = 2/(n+1), seeded with the SMA of the first n values."""

    name = "ema"
    step_kernel = staticmethod(_ema_one)
    batch_kernel = staticmethod(_ema_batch)


class RMA(_Average):
    """Wilder's average: alpha = 1/n, seeded with the SMA of the first n values."""

    name = "rma"
    step_kernel = staticmethod(_rma_one)
    batch_kernel = staticmethod(_rma_batch)
