"""The live kernel's one-pass decision (`live.decide`) against the rules as the spec writes them
(`rules.stoch_crosses`, `rules.conditions`, `rules.all_hold`, which the backtester uses), on every bar of
the shared real candles, for every bot of a bank whose bots share and do not share indicator groups.

Each bar, the expected signals are recomputed from the kernel's own indicator columns with the array
rules, and the reasons `explain` gives for an entry must be the conditions that made it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.strategy.candles import Candles
from services.strategy.registry import get_strategy
from services.strategy.strategies.base import ParamValues
from services.strategy.strategies.ppp_vishva import indicator_set, rules
from services.strategy.strategies.ppp_vishva.live import PPPLiveKernel

STRATEGY = get_strategy("ppp_vishva")


def bank_params() -> list[ParamValues]:
    """The templates, two bots sharing one indicator group with different rule parameters, and a spread
    of thresholds, lookbacks and switches."""
    bots = [STRATEGY.resolve(t, {}) for t in ("conservative", "moderate", "aggressive")]
    rng = np.random.default_rng(7)
    for i in range(24):
        bots.append(
            STRATEGY.resolve(
                ("conservative", "moderate", "aggressive")[i % 3],
                {
                    "ema_len": int(rng.choice([20, 50, 100])),
                    "stoch_oversold": int(rng.integers(10, 40)),
                    "stoch_overbought": int(rng.integers(60, 90)),
                    "stoch_lookback": int(rng.integers(1, 10)),
                    "ewo_threshold": float(rng.choice([0.0, 0.5, 2.0])),
                    "ha_confirm": bool(i % 2),
                    "allow_short": bool(i % 4 != 3),
                    "exit_on_opposite_ut": bool(i % 5 != 4),
                },
            )
        )
    return bots


def test_the_one_pass_decision_is_the_rules_on_every_bar_and_bot(real_candles: Candles) -> None:
    candles = real_candles
    bots = bank_params()
    kernel = PPPLiveKernel(bots, shorts_allowed=True)
    assert kernel.shared, "the bank must have bots sharing an indicator group"
    col = {n: j for j, n in enumerate(indicator_set.COLUMNS)}
    p: dict[str, Any] = {n: np.array([b[n] for b in bots]) for n in ("ewo_threshold", "stoch_lookback")}
    p["ha_confirm"] = np.array([bool(b["ha_confirm"]) for b in bots])
    shorts = np.array([bool(b["allow_short"]) for b in bots])
    opposite = np.array([bool(b["exit_on_opposite_ut"]) for b in bots])
    oversold = np.array([b["stoch_oversold"] for b in bots])
    overbought = np.array([b["stoch_overbought"] for b in bots])
    up_age, down_age = np.full(len(bots), np.inf), np.full(len(bots), np.inf)
    entries = 0
    for t in range(len(candles)):
        close = float(candles.close[t])
        sig = kernel.step(float(candles.open[t]), float(candles.high[t]), float(candles.low[t]), close)
        cur, prev = kernel.cur[:, kernel.bot_group], kernel.prev[:, kernel.bot_group]
        cols = {n: cur[col[n]] for n in indicator_set.COLUMNS}
        up, down = rules.stoch_crosses(
            cols["stochrsi_k"], cols["stochrsi_d"], prev[col["stochrsi_k"]], prev[col["stochrsi_d"]],
            oversold, overbought,
        )  # fmt: skip
        up_age = np.where(up, 0.0, up_age + 1.0)
        down_age = np.where(down, 0.0, down_age + 1.0)
        long, short = rules.conditions(cols, close, up_age, down_age, p)
        expected = {
            "long_entry": rules.all_hold(long),
            "short_entry": rules.all_hold(short) & shorts,
            "long_exit": (cols["ut_sell"] == 1.0) & opposite,
            "short_exit": (cols["ut_buy"] == 1.0) & opposite,
        }
        for what, want in expected.items():
            got = getattr(sig, what)
            assert np.array_equal(got, want), f"bar {t}, {what}: bots {np.flatnonzero(got != want)}"
        want_distance = np.array([b["sl_atr_mult"] for b in bots]) * cols["atr_sl"]
        np.testing.assert_array_equal(sig.stop_distance, want_distance)
        np.testing.assert_array_equal(kernel.up_age, up_age)
        for i in np.flatnonzero(sig.long_entry | sig.short_entry):
            side = 1 if sig.long_entry[i] else -1
            why = kernel.explain(int(i), side, close)
            held = long if side > 0 else short
            assert why["conditions"] == {n: bool(v[i]) for n, v in held.items()}
            assert all(why["conditions"].values()), why
            entries += 1
    print(f"{len(candles)} bars, {len(bots)} bots, {entries} entries explained")
    assert entries > 0, "no entry at all: the comparison judged nothing but flat bots"
