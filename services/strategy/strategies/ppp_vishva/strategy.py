"""PPP Vishva: EMA trend filter + UT Bot signal + EWO momentum + StochRSI timing + Heikin Ashi confirm."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from services.strategy.candles import Candles
from services.strategy.errors import ParameterError
from services.strategy.live.kernel import LiveKernel
from services.strategy.strategies.base import FloatArray, ParamValues, Signals, Strategy
from services.strategy.strategies.ppp_vishva import indicator_set, rules
from services.strategy.strategies.ppp_vishva.params import PARAMS, TEMPLATES


class PPPVishva(Strategy):
    name = "ppp_vishva"
    title = "PPP Vishva"
    description = (
        "Trend-following entries when UT Bot flips with the EMA trend, positive EWO momentum, a recent "
        "StochRSI cross out of the extreme zone and a confirming Heikin Ashi candle; ATR stop, "
        "R-multiple target."
    )
    params = PARAMS
    templates = TEMPLATES
    default_template = "moderate"
    indicator_columns = indicator_set.COLUMNS

    def check_relations(self, values: ParamValues) -> None:
        if values["ewo_slow"] <= values["ewo_fast"]:
            raise ParameterError(
                f"must be greater than ewo_fast ({values['ewo_fast']}), got {values['ewo_slow']}",
                field="ewo_slow",
            )
        if values["stoch_overbought"] <= values["stoch_oversold"]:
            raise ParameterError(
                f"must be greater than stoch_oversold ({values['stoch_oversold']}), "
                f"got {values['stoch_overbought']}",
                field="stoch_overbought",
            )

    def warmup_bars(self, params: ParamValues) -> int:
        stoch = (
            int(params["stoch_rsi_len"])
            + int(params["stoch_len"])
            + int(params["stoch_k"])
            + int(params["stoch_d"])
            - 2
        )
        return max(
            int(params["ema_len"]),
            int(params["ewo_slow"]),
            int(params["atr_len"]),
            int(params["ut_atr"]) + 1,
            stoch + 1,
        )

    def indicators(self, candles: Candles, params: ParamValues) -> dict[str, FloatArray]:
        return indicator_set.compute(candles.open, candles.high, candles.low, candles.close, params)

    def _conditions(
        self, columns: Mapping[str, FloatArray], close: FloatArray, params: ParamValues
    ) -> tuple[dict[str, Any], dict[str, Any], FloatArray, FloatArray]:
        k, d = columns["stochrsi_k"], columns["stochrsi_d"]
        k_prev = np.r_[np.nan, k[:-1]]
        d_prev = np.r_[np.nan, d[:-1]]
        up, down = rules.stoch_crosses(
            k, d, k_prev, d_prev, params["stoch_oversold"], params["stoch_overbought"]
        )
        up_age, down_age = rules.cross_age_batch(up), rules.cross_age_batch(down)
        long, short = rules.conditions(columns, close, up_age, down_age, params)
        return long, short, up_age, down_age

    def signals(
        self,
        candles: Candles,
        columns: Mapping[str, FloatArray],
        params: ParamValues,
        *,
        shorts_allowed: bool,
    ) -> Signals:
        long, short, _, _ = self._conditions(columns, candles.close, params)
        long_entry = rules.all_hold(long)
        short_entry = (
            rules.all_hold(short) if shorts_allowed and params["allow_short"] else np.zeros_like(long_entry)
        )
        opposite = bool(params["exit_on_opposite_ut"])
        never = np.zeros_like(long_entry)
        return Signals(
            long_entry=long_entry,
            short_entry=short_entry,
            long_exit=columns["ut_sell"] == 1.0 if opposite else never,
            short_exit=columns["ut_buy"] == 1.0 if opposite else never,
            stop_distance=float(params["sl_atr_mult"]) * columns["atr_sl"],
            long_conditions=long,
            short_conditions=short,
            values={"close": candles.close} | {n: columns[n] for n in rules.REASON_VALUES if n != "close"},
        )

    def explain(
        self, columns: Mapping[str, FloatArray], close: FloatArray, t: int, side: int, params: ParamValues
    ) -> dict[str, Any]:
        lo = max(0, t - int(params["stoch_lookback"]) - 1)
        window = {name: col[lo : t + 1] for name, col in columns.items()}
        long, short, up_age, down_age = self._conditions(window, close[lo : t + 1], params)
        chosen = long if side > 0 else short
        age = (up_age if side > 0 else down_age)[-1]
        values = {"close": float(close[t])} | {
            n: float(columns[n][t]) for n in rules.REASON_VALUES if n != "close"
        }
        return {
            "side": "long" if side > 0 else "short",
            "conditions": {name: bool(held[-1]) for name, held in chosen.items()},
            "values": {k: (None if np.isnan(v) else v) for k, v in values.items()},
            "bars_since_stoch_cross": None if np.isinf(age) else int(age),
        }

    def live_kernel(self, bots: list[ParamValues], *, shorts_allowed: bool) -> LiveKernel:
        from services.strategy.strategies.ppp_vishva.live import PPPLiveKernel

        return PPPLiveKernel(bots, shorts_allowed=shorts_allowed)
