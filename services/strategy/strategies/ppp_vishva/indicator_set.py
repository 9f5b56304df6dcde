"""The PPP Vishva indicator set: batch columns over whole arrays, and a live step over many groups.

Both forms chain the same step functions, so they agree exactly (tests check it on every data file).
The batch form (`compute`) fills one block of rows in a few compiled passes (see `batch_columns`); the
live form (`group_step`) advances one state row per parameter group by one bar.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from services.strategy.indicators.base import output_block
from services.strategy.indicators.heikin_ashi import heikin_ashi_update
from services.strategy.indicators.momentum import (
    STOCH_RAW_FIXED,
    ewo_update,
    rsi_series,
    rsi_state,
    rsi_update,
    stoch_of_rsi_series,
    stoch_of_rsi_step,
)
from services.strategy.indicators.moving_averages import ema_update, rma_update
from services.strategy.indicators.ut_bot import ut_update
from services.strategy.indicators.volatility import true_range
from services.strategy.strategies.base import ParamValues
from services.strategy.strategies.ppp_vishva.params import INDICATOR_PARAMS

FloatArray = npt.NDArray[np.float64]
NAN = np.nan

COLUMNS = (
    "ema",
    "atr_sl",
    "atr_ut",
    "rsi",
    "stochrsi_k",
    "stochrsi_d",
    "ewo",
    "ha_open",
    "ha_high",
    "ha_low",
    "ha_close",
    "ut_stop",
    "ut_buy",
    "ut_sell",
)
(C_EMA, C_ATR_SL, C_ATR_UT, C_RSI, C_K, C_D, C_EWO, C_HA_O, C_HA_H, C_HA_L, C_HA_C, C_STOP, C_BUY, C_SELL) = (
    range(len(COLUMNS))
)
# Group parameter columns, in INDICATOR_PARAMS order.
(P_EMA, P_UT_KEY, P_UT_ATR, P_UT_HA, P_EWO_F, P_EWO_S, P_RSI, P_STOCH, P_K, P_D, P_ATR) = range(
    len(INDICATOR_PARAMS)
)

# Fixed part of a state row: previous close, ATR for stops (seen, acc), ATR for UT Bot (seen, acc),
# EMA (seen, acc), EWO's two EMAs (4), RSI's two averages (4), Heikin Ashi (open, close), UT Bot
# (source, stop). The three ring buffers (stochastic window, K, D) follow.
_FIXED = 19


class Layout:
    """Where the ring buffers sit in a state row, sized for the longest windows among the groups."""

    def __init__(self, max_stoch: int, max_k: int, max_d: int) -> None:
        self.k_offset = _FIXED + STOCH_RAW_FIXED + max_stoch
        self.d_offset = self.k_offset + 2 + max_k
        self.width = self.d_offset + 2 + max_d

    def initial_state(self, groups: int) -> FloatArray:
        row = np.zeros(self.width)
        row[0] = np.nan
        row[15:19] = np.nan
        return np.tile(row, (groups, 1))

    @classmethod
    def for_groups(cls, group_params: FloatArray) -> Layout:
        return cls(
            int(group_params[:, P_STOCH].max()),
            int(group_params[:, P_K].max()),
            int(group_params[:, P_D].max()),
        )


def group_params(params: ParamValues) -> tuple[float, ...]:
    """The indicator-shaping parameters of one bot, as the kernel reads them (also its sharing key)."""
    return tuple(float(params[name]) for name in INDICATOR_PARAMS)


@njit(cache=True)
def group_step(
    st: Any,
    i: int,
    gp: Any,
    k_off: int,
    d_off: int,
    op: float,
    high: float,
    low: float,
    close: float,
    out: Any,
    col: int,
) -> None:
    """Advance group i by one bar and write its columns into out[:, col] (the live form)."""
    prev_close = st[i, 0]
    tr = true_range(high, low, prev_close)
    st[i, 1], st[i, 2], out[C_ATR_SL, col] = rma_update(st[i, 1], st[i, 2], tr, int(gp[i, P_ATR]))
    st[i, 3], st[i, 4], atr_ut = rma_update(st[i, 3], st[i, 4], tr, int(gp[i, P_UT_ATR]))
    out[C_ATR_UT, col] = atr_ut
    st[i, 5], st[i, 6], out[C_EMA, col] = ema_update(st[i, 5], st[i, 6], close, int(gp[i, P_EMA]))
    st[i, 7], st[i, 8], st[i, 9], st[i, 10], out[C_EWO, col] = ewo_update(
        st[i, 7], st[i, 8], st[i, 9], st[i, 10], close, int(gp[i, P_EWO_F]), int(gp[i, P_EWO_S])
    )
    st[i, 11], st[i, 12], st[i, 13], st[i, 14], rsi = rsi_update(
        prev_close, st[i, 11], st[i, 12], st[i, 13], st[i, 14], close, int(gp[i, P_RSI])
    )
    st[i, 0] = close
    out[C_RSI, col] = rsi
    _, out[C_K, col], out[C_D, col] = stoch_of_rsi_step(
        st, i, _FIXED, rsi, int(gp[i, P_STOCH]), int(gp[i, P_K]), int(gp[i, P_D])
    )
    ha_open, out[C_HA_H, col], out[C_HA_L, col], ha_close = heikin_ashi_update(
        st[i, 15], st[i, 16], op, high, low, close
    )
    st[i, 15] = ha_open
    st[i, 16] = ha_close
    out[C_HA_O, col] = ha_open
    out[C_HA_C, col] = ha_close
    src = ha_close if gp[i, P_UT_HA] != 0.0 else close
    stop, out[C_BUY, col], out[C_SELL, col] = ut_update(st[i, 17], st[i, 18], src, atr_ut, gp[i, P_UT_KEY])
    st[i, 17] = src
    st[i, 18] = stop
    out[C_STOP, col] = stop


@njit(cache=True)
def step_groups(
    st: Any, gp: Any, k_off: int, d_off: int, op: float, high: float, low: float, close: float, out: Any
) -> None:
    """One bar for every group (the live form)."""
    for i in range(st.shape[0]):
        group_step(st, i, gp, k_off, d_off, op, high, low, close, out, i)


@njit(cache=True)
def batch_columns(
    op: Any,
    high: Any,
    low: Any,
    close: Any,
    ema_len: int,
    ut_key: float,
    ut_atr: int,
    ut_use_ha: bool,
    ewo_fast: int,
    ewo_slow: int,
    rsi_len: int,
    stoch_len: int,
    k: int,
    d: int,
    atr_len: int,
    rsi_init: Any,
    out: Any,
) -> None:
    """Every column over whole arrays into `out`, a (len(COLUMNS), n) block: the batch form of
    `group_step`.

    One block (see `output_block` on why) and no temporaries. The passes are split where one long loop
    body runs slower than two short ones (measured: RSI in the EMA/EWO loop makes it 2x slower): the
    range-based indicators, the EMA and EWO, RSI (its loss average parked in the K row), then the
    stochastic window and its two SMAs (raw parked in the D row).
    """
    n = close.size
    prev_close, sl_seen, sl_acc, ut_seen, ut_acc = NAN, 0.0, 0.0, 0.0, 0.0
    ha_open, ha_close, prev_src, prev_stop = NAN, NAN, NAN, NAN
    for t in range(n):
        tr = true_range(high[t], low[t], prev_close)
        prev_close = close[t]
        sl_seen, sl_acc, out[C_ATR_SL, t] = rma_update(sl_seen, sl_acc, tr, atr_len)
        ut_seen, ut_acc, atr_ut = rma_update(ut_seen, ut_acc, tr, ut_atr)
        out[C_ATR_UT, t] = atr_ut
        ha_open, out[C_HA_H, t], out[C_HA_L, t], ha_close = heikin_ashi_update(
            ha_open, ha_close, op[t], high[t], low[t], close[t]
        )
        out[C_HA_O, t] = ha_open
        out[C_HA_C, t] = ha_close
        src = ha_close if ut_use_ha else close[t]
        prev_stop, out[C_BUY, t], out[C_SELL, t] = ut_update(prev_src, prev_stop, src, atr_ut, ut_key)
        out[C_STOP, t] = prev_stop
        prev_src = src
    e_seen, e_acc, f_seen, f_acc, s_seen, s_acc = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for t in range(n):
        e_seen, e_acc, out[C_EMA, t] = ema_update(e_seen, e_acc, close[t], ema_len)
        f_seen, f_acc, s_seen, s_acc, out[C_EWO, t] = ewo_update(
            f_seen, f_acc, s_seen, s_acc, close[t], ewo_fast, ewo_slow
        )
    rsi_series(close, rsi_len, rsi_init, out[C_RSI], out[C_K])
    stoch_of_rsi_series(out[C_RSI], stoch_len, k, d, out[C_D], out[C_K], out[C_D])


def compute(
    op: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray, params: ParamValues
) -> dict[str, FloatArray]:
    """All PPP Vishva columns over whole arrays (the batch form): rows of one block, by name."""
    o, h, lo, c = (np.ascontiguousarray(a, dtype=np.float64) for a in (op, high, low, close))
    g = group_params(params)
    block = output_block(len(COLUMNS), c.size)
    batch_columns(
        o,
        h,
        lo,
        c,
        int(g[P_EMA]),
        g[P_UT_KEY],
        int(g[P_UT_ATR]),
        g[P_UT_HA] != 0.0,
        int(g[P_EWO_F]),
        int(g[P_EWO_S]),
        int(g[P_RSI]),
        int(g[P_STOCH]),
        int(g[P_K]),
        int(g[P_D]),
        int(g[P_ATR]),
        rsi_state(),
        block,
    )
    return {name: block[j] for j, name in enumerate(COLUMNS)}
