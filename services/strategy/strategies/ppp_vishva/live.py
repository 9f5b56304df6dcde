"""PPP Vishva's live kernel: indicator state per parameter group, rule state per bot, all as arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

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
# Columns the rules read, gathered from groups to bots each step.
_READ = (
    "ema",
    "ut_buy",
    "ut_sell",
    "ewo",
    "ha_open",
    "ha_close",
    "atr_sl",
    "stochrsi_k",
    "stochrsi_d",
    "ut_stop",
)


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
        self._last: dict[str, Any] = {}

    def state_bytes(self) -> int:
        arrays = [self.state, self.gp, self.cur, self.prev, self.bot_group, self.shorts, self.opposite]
        arrays += [self.up_age, self.down_age, *self.p.values()]
        return sum(a.nbytes for a in arrays)

    def _per_bot(self, table: Any, name: str) -> Any:
        row = table[self._col[name]]
        return row[self.bot_group] if self.shared else row

    def step(self, op: float, high: float, low: float, close: float) -> Signals:
        self.prev, self.cur = self.cur, self.prev
        lay = self.layout
        indicator_set.step_groups(
            self.state, self.gp, lay.k_offset, lay.d_offset, op, high, low, close, self.cur
        )
        cols = {name: self._per_bot(self.cur, name) for name in _READ}
        up, down = rules.stoch_crosses(
            cols["stochrsi_k"],
            cols["stochrsi_d"],
            self._per_bot(self.prev, "stochrsi_k"),
            self._per_bot(self.prev, "stochrsi_d"),
            self.p["stoch_oversold"],
            self.p["stoch_overbought"],
        )
        self.up_age = np.where(up, 0.0, self.up_age + 1.0)
        self.down_age = np.where(down, 0.0, self.down_age + 1.0)
        long, short = rules.conditions(cols, close, self.up_age, self.down_age, self.p)
        self._last = {"cols": cols, "long": long, "short": short}
        never = np.zeros(self.n_bots, dtype=bool)
        return Signals(
            long_entry=rules.all_hold(long),
            short_entry=rules.all_hold(short) & self.shorts,
            long_exit=(cols["ut_sell"] == 1.0) & self.opposite if self.opposite.any() else never,
            short_exit=(cols["ut_buy"] == 1.0) & self.opposite if self.opposite.any() else never,
            stop_distance=self.p["sl_atr_mult"] * cols["atr_sl"],
        )

    def explain(self, bot: int, side: int, close: float) -> dict[str, Any]:
        cols, conds = self._last["cols"], self._last["long" if side > 0 else "short"]
        values = {"close": close} | {n: float(cols[n][bot]) for n in rules.REASON_VALUES if n != "close"}
        age = (self.up_age if side > 0 else self.down_age)[bot]
        return {
            "side": "long" if side > 0 else "short",
            "conditions": {name: bool(np.asarray(held)[bot]) for name, held in conds.items()},
            "values": {k: (None if np.isnan(v) else v) for k, v in values.items()},
            "bars_since_stoch_cross": None if np.isinf(age) else int(age),
        }
