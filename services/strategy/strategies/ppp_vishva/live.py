"""PPP Vishva's live kernel: indicator state per parameter group, rule state per bot, all as arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from services.strategy.strategies.base import ParamValues, Signals
from services.strategy.strategies.ppp_vishva import indicator_set, rules

_BOT_PARAMS = (
    "ewo_threshold",
    "stoch_oversold",
    "stoch_overbought",
    "stoch_lookback",
    "ha_confirm",
    "sl_atr_mult",
)
# The columns `decide` reads, in the order it unpacks them.
_DECIDE_COLUMNS = (
    "ema",
    "ut_buy",
    "ut_sell",
    "ewo",
    "ha_open",
    "ha_close",
    "atr_sl",
    "stochrsi_k",
    "stochrsi_d",
)
# The columns an entry's reasons show (the stop UT Bot trails, besides what the rules read).
_READ = (*_DECIDE_COLUMNS, "ut_stop")


class PPPLiveKernel:
    """Bots with identical indicator parameters share one state row (a group)."""

    def __init__(self, bots: list[ParamValues], *, shorts_allowed: bool) -> None:
        keys = [indicator_set.group_params(p) for p in bots]
        unique = sorted(set(keys))
        index = {k: g for g, k in enumerate(unique)}
        self.n_bots = len(bots)
        self.bot_group = np.array([index[k] for k in keys], dtype=np.int64)
        self.shared = len(unique) < len(bots) or not np.array_equal(self.bot_group, np.arange(len(bots)))
        self.gp = np.array(unique, dtype=np.float64)
        self.layout = indicator_set.Layout.for_groups(self.gp)
        self.state = self.layout.initial_state(len(unique))
        self.cur = np.full((len(indicator_set.COLUMNS), len(unique)), np.nan)
        self.prev = self.cur.copy()
        self.p: dict[str, Any] = {name: np.array([b[name] for b in bots]) for name in _BOT_PARAMS}
        self.p["ha_confirm"] = self.p["ha_confirm"].astype(bool)
        self.shorts = np.array([bool(b["allow_short"]) and shorts_allowed for b in bots])
        self.opposite = np.array([bool(b["exit_on_opposite_ut"]) for b in bots])
        self.up_age = np.full(len(bots), np.inf)
        self.down_age = np.full(len(bots), np.inf)
        self._col = {name: j for j, name in enumerate(indicator_set.COLUMNS)}
        self._cols = np.array([self._col[name] for name in _DECIDE_COLUMNS], dtype=np.int64)

    def state_bytes(self) -> int:
        arrays = [self.state, self.gp, self.cur, self.prev, self.bot_group, self.shorts, self.opposite]
        arrays += [self.up_age, self.down_age, *self.p.values()]
        return sum(a.nbytes for a in arrays)

    def step(self, op: float, high: float, low: float, close: float) -> Signals:
        self.prev, self.cur = self.cur, self.prev
        lay = self.layout
        indicator_set.step_groups(
            self.state, self.gp, lay.k_offset, lay.d_offset, op, high, low, close, self.cur
        )
        n = self.n_bots
        out = Signals(
            long_entry=np.empty(n, dtype=bool),
            short_entry=np.empty(n, dtype=bool),
            long_exit=np.empty(n, dtype=bool),
            short_exit=np.empty(n, dtype=bool),
            stop_distance=np.empty(n),
        )
        p = self.p
        decide(
            self.cur, self.prev, self.bot_group, self._cols, close,
            p["ewo_threshold"], p["stoch_oversold"], p["stoch_overbought"], p["stoch_lookback"],
            p["ha_confirm"], p["sl_atr_mult"], self.shorts, self.opposite, self.up_age, self.down_age,
            out.long_entry, out.short_entry, out.long_exit, out.short_exit, out.stop_distance,
        )  # fmt: skip
        return out

    def explain(self, bot: int, side: int, close: float) -> dict[str, Any]:
        """Why bot entered on the last step, from the rules as the spec writes them (`rules.conditions`,
        which the backtester uses): tests/strategy/test_live_kernel.py checks `decide` agrees with them."""
        # Plain Python numbers: the rules on one bot's scalars cost less than on numpy scalars.
        column = self.cur[:, int(self.bot_group[bot])].tolist()
        cols = {name: column[self._col[name]] for name in _READ}
        params = {name: values[bot].item() for name, values in self.p.items()}
        up_age, down_age = float(self.up_age[bot]), float(self.down_age[bot])
        long, short = rules.conditions(cols, close, up_age, down_age, params)
        values = {"close": close} | {n: cols[n] for n in rules.REASON_VALUES if n != "close"}
        age = up_age if side > 0 else down_age
        return {
            "side": "long" if side > 0 else "short",
            "conditions": {name: bool(held) for name, held in (long if side > 0 else short).items()},
            "values": {k: (None if math.isnan(v) else v) for k, v in values.items()},
            "bars_since_stoch_cross": None if math.isinf(age) else int(age),
        }


@njit(cache=True)
def decide(
    cur: Any, prev: Any, bot_group: Any, cols: Any, close: float,
    ewo_threshold: Any, oversold: Any, overbought: Any, lookback: Any, ha_confirm: Any, sl_atr_mult: Any,
    shorts: Any, opposite: Any, up_age: Any, down_age: Any,
    long_entry: Any, short_entry: Any, long_exit: Any, short_exit: Any, stop_distance: Any,
) -> None:  # fmt: skip
    """`rules.stoch_crosses`, `rules.conditions` and `rules.all_hold` for every bot in one pass, with
    the cross ages carried forward. The array form costs some forty numpy calls on 100-element arrays
    per symbol and candle, most of the engine's time on a candle burst; this loop is one call. The rules
    stay written once in `rules` (the backtester's and the reasons' form); tests compare the two."""
    ema, ut_buy, ut_sell, ewo, ha_open, ha_close, atr_sl, k_col, d_col = cols
    for i in range(bot_group.size):
        g = bot_group[i]
        k, d, k_prev, d_prev = cur[k_col, g], cur[d_col, g], prev[k_col, g], prev[d_col, g]
        up = k > d and k_prev <= d_prev and k < oversold[i]
        down = k < d and k_prev >= d_prev and k > overbought[i]
        up_age[i] = 0.0 if up else up_age[i] + 1.0
        down_age[i] = 0.0 if down else down_age[i] + 1.0
        within = lookback[i] - 1
        buy, sell = cur[ut_buy, g] == 1.0, cur[ut_sell, g] == 1.0
        ema_now, ewo_now, ha_o, ha_c = cur[ema, g], cur[ewo, g], cur[ha_open, g], cur[ha_close, g]
        long_entry[i] = (
            close > ema_now
            and buy
            and ewo_now > ewo_threshold[i]
            and up_age[i] <= within
            and (not ha_confirm[i] or ha_c > ha_o)
        )
        short_entry[i] = (
            close < ema_now
            and sell
            and ewo_now < -ewo_threshold[i]
            and down_age[i] <= within
            and (not ha_confirm[i] or ha_c < ha_o)
            and shorts[i]
        )
        long_exit[i] = sell and opposite[i]
        short_exit[i] = buy and opposite[i]
        stop_distance[i] = sl_atr_mult[i] * cur[atr_sl, g]
