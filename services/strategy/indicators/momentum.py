"""RSI, Stochastic RSI and the Elliott Wave Oscillator (EWO).

State rows:
- RSI(n): [previous close, RMA of gains (seen, acc), RMA of losses (seen, acc)]
- Stoch raw(s): [consecutive valid inputs, write slot, max, its slot, min, its slot, ring of s inputs]
- StochRSI(r,s,k,d): RSI (5) + raw (6+s) + SMA K (2+k) + SMA D (2+d)
- EWO(f,s): EMA fast (seen, acc) + EMA slow (seen, acc)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from services.strategy.indicators.base import FloatArray, Indicator, check_length
from services.strategy.indicators.moving_averages import (
    ema_update,
    rma_update,
    sma_series,
    sma_state,
    sma_step,
)

NAN = np.nan
RSI_WIDTH = 5
STOCH_RAW_FIXED = 6


def rsi_state() -> FloatArray:
    return np.array([np.nan, 0.0, 0.0, 0.0, 0.0])


def stoch_raw_state(s: int) -> FloatArray:
    return np.zeros(STOCH_RAW_FIXED + s)


@njit(cache=True, inline="always")
def rsi_value(avg_gain: float, avg_loss: float) -> float:
    if np.isnan(avg_gain) or np.isnan(avg_loss):
        return NAN
    if avg_loss == 0.0:
        return 100.0
    if avg_gain == 0.0:
        return 0.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


@njit(cache=True, inline="always")
def rsi_averages_update(
    prev: float, g_seen: float, g_acc: float, l_seen: float, l_acc: float, close: float, n: int
) -> Any:
    """One step of RSI's two averages; `prev` is the previous close (NaN on the first bar). Returns the
    new state (g_seen, g_acc, l_seen, l_acc) and the averages of gains and of losses."""
    gain = NAN
    loss = NAN
    if not np.isnan(prev):
        d = close - prev
        gain = d if d > 0.0 else 0.0
        loss = -d if d < 0.0 else 0.0
    g_seen, g_acc, avg_gain = rma_update(g_seen, g_acc, gain, n)
    l_seen, l_acc, avg_loss = rma_update(l_seen, l_acc, loss, n)
    return g_seen, g_acc, l_seen, l_acc, avg_gain, avg_loss


@njit(cache=True, inline="always")
def rsi_update(
    prev: float, g_seen: float, g_acc: float, l_seen: float, l_acc: float, close: float, n: int
) -> Any:
    """One RSI step: the new averages' state (g_seen, g_acc, l_seen, l_acc) and the RSI."""
    g_seen, g_acc, l_seen, l_acc, avg_gain, avg_loss = rsi_averages_update(
        prev, g_seen, g_acc, l_seen, l_acc, close, n
    )
    return g_seen, g_acc, l_seen, l_acc, rsi_value(avg_gain, avg_loss)


# error_model="numpy": `rsi_value` never divides by zero, so this only drops Python's zero-divisor
# checks, which keep the loop from being vectorised; the results are the same.
@njit(cache=True, error_model="numpy")
def rsi_values(avg_gain: Any, avg_loss: Any, out: Any) -> None:
    """RSI from whole arrays of the two averages (may write over `avg_gain`): the batch form keeps the
    averages' recurrence and these divisions in separate loops, which pipeline far better than one."""
    for t in range(out.size):
        out[t] = rsi_value(avg_gain[t], avg_loss[t])


@njit(cache=True)
def rsi_step(st: Any, i: int, o: int, close: float, n: int) -> float:
    st[i, o + 1], st[i, o + 2], st[i, o + 3], st[i, o + 4], value = rsi_update(
        st[i, o], st[i, o + 1], st[i, o + 2], st[i, o + 3], st[i, o + 4], close, n
    )
    st[i, o] = close
    return value


@njit(cache=True)
def _window_extreme(st: Any, i: int, b: int, pos: int, count: int, s: int, highest: bool) -> Any:
    """(value, slot) of the max (or min) of the last `count` ring entries, the newest winning ties."""
    best = st[i, b + pos]
    slot = pos
    for j in range(1, count):
        idx = pos - j
        if idx < 0:
            idx += s
        v = st[i, b + idx]
        if (v > best) if highest else (v < best):
            best = v
            slot = idx
    return best, slot


@njit(cache=True)
def stoch_raw_step(st: Any, i: int, o: int, x: float, s: int) -> float:
    """100 * (x - min) / (max - min) over the last s inputs; NaN while any is NaN or when max = min.

    The window's max and min are carried with their ring slots and rescanned only when that slot is
    overwritten, so a step is O(1) amortised rather than O(s).
    """
    b = o + STOCH_RAW_FIXED
    pos = int(st[i, o + 1])
    st[i, b + pos] = x
    st[i, o + 1] = pos + 1 if pos + 1 < s else 0
    if np.isnan(x):
        st[i, o] = 0.0
        return NAN
    run = st[i, o] + 1.0
    st[i, o] = run
    if run == 1.0:
        hi = x
        hi_slot = pos
        lo = x
        lo_slot = pos
    else:
        count = s if run >= s else int(run)
        hi = st[i, o + 2]
        hi_slot = int(st[i, o + 3])
        lo = st[i, o + 4]
        lo_slot = int(st[i, o + 5])
        if x >= hi:
            hi = x
            hi_slot = pos
        elif hi_slot == pos:
            hi, hi_slot = _window_extreme(st, i, b, pos, count, s, True)
        if x <= lo:
            lo = x
            lo_slot = pos
        elif lo_slot == pos:
            lo, lo_slot = _window_extreme(st, i, b, pos, count, s, False)
    st[i, o + 2] = hi
    st[i, o + 3] = hi_slot
    st[i, o + 4] = lo
    st[i, o + 5] = lo_slot
    if run < s or hi == lo:
        return NAN
    return 100.0 * (x - lo) / (hi - lo)


# error_model="numpy": the one division is by hi - lo with hi != lo, never zero, so this only drops
# Python's zero-divisor check from the loop; the results are the same.
@njit(cache=True, error_model="numpy")
def stoch_raw_series(x: Any, s: int, out: Any) -> None:
    """The batch form of `stoch_raw_step` (`out` is not `x`).

    The window's max and min come from blocks of s bars (van Herk / Gil-Werman): a window ending inside
    a block is the tail of the previous block (its suffix extreme) plus the head of this one (a running
    extreme), so each bar costs a few branch-free comparisons whatever the data. Max and min are exact,
    so the values equal the streaming form's; windows holding a NaN are NaN in both.
    """
    size = x.size
    tail_hi = np.full(s + 1, -np.inf)  # tail_hi[j] = max of the previous block from its slot j on
    tail_lo = np.full(s + 1, np.inf)
    run = 0.0
    for start in range(0, size, s):
        end = min(size, start + s)
        head_hi = -np.inf
        head_lo = np.inf
        for t in range(start, end):
            v = x[t]
            head_hi = v if v > head_hi else head_hi
            head_lo = v if v < head_lo else head_lo
            tail = t - start + 1
            hi = tail_hi[tail] if tail_hi[tail] > head_hi else head_hi
            lo = tail_lo[tail] if tail_lo[tail] < head_lo else head_lo
            run = 0.0 if np.isnan(v) else run + 1.0
            out[t] = NAN if (run < s or hi == lo) else 100.0 * (v - lo) / (hi - lo)
        hi = -np.inf
        lo = np.inf
        for t in range(end - 1, start - 1, -1):
            v = x[t]
            hi = v if v > hi else hi
            lo = v if v < lo else lo
            tail_hi[t - start] = hi
            tail_lo[t - start] = lo


@njit(cache=True)
def stoch_of_rsi_series(rsi: Any, s: int, k: int, d: int, raw: Any, k_out: Any, d_out: Any) -> None:
    """raw, K and D over a whole RSI array (the batch form of `stoch_of_rsi_step`). `raw` may be the
    same array as `d_out`: it is only read before D is written."""
    stoch_raw_series(rsi, s, raw)
    sma_series(raw, k, k_out)
    sma_series(k_out, d, d_out)


@njit(cache=True)
def stoch_of_rsi_step(st: Any, i: int, o: int, rsi: float, s: int, k: int, d: int) -> Any:
    """(raw, K, D) from this bar's RSI; the row holds raw (6+s), then K (2+k), then D (2+d)."""
    raw = stoch_raw_step(st, i, o, rsi, s)
    o += STOCH_RAW_FIXED + s
    k_value = sma_step(st, i, o, raw, k)
    return raw, k_value, sma_step(st, i, o + 2 + k, k_value, d)


@njit(cache=True, inline="always")
def ewo_update(
    f_seen: float, f_acc: float, s_seen: float, s_acc: float, close: float, fast: int, slow: int
) -> Any:
    f_seen, f_acc, fast_ema = ema_update(f_seen, f_acc, close, fast)
    s_seen, s_acc, slow_ema = ema_update(s_seen, s_acc, close, slow)
    return f_seen, f_acc, s_seen, s_acc, (fast_ema - slow_ema) / close * 100.0


@njit(cache=True)
def _rsi_one(st: Any, i: int, close: float, n: int) -> float:
    return rsi_step(st, i, 0, close, n)


@njit(cache=True)
def rsi_series(close: Any, n: int, init: Any, out: Any, scratch: Any) -> None:
    """The batch form of `rsi_step` into `out`; `scratch` (same length) holds the loss average."""
    prev, gs, ga, ls, la = init[0], init[1], init[2], init[3], init[4]
    for t in range(close.size):
        gs, ga, ls, la, out[t], scratch[t] = rsi_averages_update(prev, gs, ga, ls, la, close[t], n)
        prev = close[t]
    rsi_values(out, scratch, out)


@njit(cache=True)
def _rsi_batch(close: Any, n: int, init: Any, out: Any) -> None:
    rsi_series(close, n, init, out[0], out[1])


@njit(cache=True)
def _stoch_rsi_one(st: Any, i: int, close: float, r: int, s: int, k: int, d: int) -> Any:
    rsi = rsi_step(st, i, 0, close, r)
    raw, k_value, d_value = stoch_of_rsi_step(st, i, RSI_WIDTH, rsi, s, k, d)
    return rsi, raw, k_value, d_value


@njit(cache=True)
def _stoch_rsi_batch(close: Any, r: int, s: int, k: int, d: int, init: Any, out: Any) -> None:
    rsi_series(close, r, init, out[0], out[1])
    stoch_of_rsi_series(out[0], s, k, d, out[1], out[2], out[3])


@njit(cache=True)
def _ewo_one(st: Any, i: int, close: float, fast: int, slow: int) -> float:
    st[i, 0], st[i, 1], st[i, 2], st[i, 3], value = ewo_update(
        st[i, 0], st[i, 1], st[i, 2], st[i, 3], close, fast, slow
    )
    return value


@njit(cache=True)
def _ewo_batch(close: Any, fast: int, slow: int, init: Any, out: Any) -> None:
    fs, fa, ss, sa = init[0], init[1], init[2], init[3]
    for t in range(close.size):
        fs, fa, ss, sa, out[0, t] = ewo_update(fs, fa, ss, sa, close[t], fast, slow)


class RSI(Indicator):
    """Wilder's RSI; first value at t = n; 100 when the loss average is 0, 0 when the gain average is."""

    name = "rsi"
    scratch_rows = 1  # the loss average, while the batch form divides
    step_kernel = staticmethod(_rsi_one)
    batch_kernel = staticmethod(_rsi_batch)

    def __init__(self, length: int = 14) -> None:
        self.length = check_length(self.name, "length", length)

    def args(self) -> tuple[Any, ...]:
        return (self.length,)

    def initial_state(self) -> FloatArray:
        return rsi_state()


class StochRSI(Indicator):
    """Stochastic RSI: raw = stochastic of RSI over s bars, K = SMA(raw, k), D = SMA(K, d)."""

    name = "stochrsi"
    outputs = ("rsi", "raw", "k", "d")
    step_kernel = staticmethod(_stoch_rsi_one)
    batch_kernel = staticmethod(_stoch_rsi_batch)

    def __init__(self, rsi_length: int = 14, stoch_length: int = 14, k: int = 3, d: int = 3) -> None:
        self.rsi_length = check_length(self.name, "rsi_length", rsi_length)
        self.stoch_length = check_length(self.name, "stoch_length", stoch_length)
        self.k = check_length(self.name, "k", k)
        self.d = check_length(self.name, "d", d)

    def args(self) -> tuple[Any, ...]:
        return (self.rsi_length, self.stoch_length, self.k, self.d)

    def initial_state(self) -> FloatArray:
        return np.concatenate(
            [rsi_state(), stoch_raw_state(self.stoch_length), sma_state(self.k), sma_state(self.d)]
        )


class EWO(Indicator):
    """Elliott Wave Oscillator: (EMA(C, fast) - EMA(C, slow)) / C * 100."""

    name = "ewo"
    step_kernel = staticmethod(_ewo_one)
    batch_kernel = staticmethod(_ewo_batch)

    def __init__(self, fast: int = 5, slow: int = 35) -> None:
        self.fast = check_length(self.name, "fast", fast)
        self.slow = check_length(self.name, "slow", slow)
        if self.slow <= self.fast:
            raise ValueError(f"ewo.slow: must be greater than fast ({self.fast}), got {self.slow}")

    def args(self) -> tuple[Any, ...]:
        return (self.fast, self.slow)

    def initial_state(self) -> FloatArray:
        return np.zeros(4)
