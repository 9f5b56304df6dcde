"""PPP Vishva parameters and the three templates of the spec (docs: shared/specs/ppp-vishva.md)."""

from __future__ import annotations

from collections.abc import Mapping

from services.strategy.strategies.base import Param, ParamValue

PARAMS: tuple[Param, ...] = (
    Param(
        "ema_len",
        int,
        100,
        "Trend filter: close must be above (long) / below (short) EMA(close, n)",
        "bars",
        2,
        1000,
    ),
    Param(
        "ut_key",
        float,
        2.0,
        "UT Bot key value a: the trailing stop sits a x ATR from the source",
        "x ATR",
        0.1,
        20.0,
    ),
    Param("ut_atr", int, 10, "UT Bot ATR length c", "bars", 1, 500),
    Param("ut_use_ha", bool, False, "UT Bot follows the Heikin Ashi close instead of the close", ""),
    Param("ewo_fast", int, 5, "EWO fast EMA length", "bars", 1, 500),
    Param("ewo_slow", int, 35, "EWO slow EMA length (must exceed ewo_fast)", "bars", 2, 1000),
    Param("ewo_threshold", float, 0.0, "Long needs EWO above it, short below its negative", "%", 0.0, 100.0),
    Param("stoch_rsi_len", int, 14, "Stochastic RSI: RSI length r", "bars", 2, 500),
    Param("stoch_len", int, 14, "Stochastic RSI: stochastic window s over the RSI", "bars", 2, 100),
    Param("stoch_k", int, 3, "Stochastic RSI: K smoothing (SMA length)", "bars", 1, 20),
    Param("stoch_d", int, 3, "Stochastic RSI: D smoothing (SMA of K)", "bars", 1, 20),
    Param("stoch_oversold", float, 20.0, "Long needs K crossing over D below this level", "", 0.0, 100.0),
    Param("stoch_overbought", float, 80.0, "Short needs K crossing under D above this level", "", 0.0, 100.0),
    Param(
        "stoch_lookback",
        int,
        5,
        "The StochRSI cross may be this many bars old, counting the signal bar",
        "bars",
        1,
        100,
    ),
    Param("ha_confirm", bool, True, "Require a bullish (long) / bearish (short) Heikin Ashi candle", ""),
    Param("atr_len", int, 14, "ATR length for the stop-loss distance", "bars", 1, 500),
    Param("sl_atr_mult", float, 1.5, "Stop-loss distance from entry", "x ATR", 0.1, 20.0),
    Param("tp_rr", float, 2.0, "Take-profit distance as a multiple of the stop distance", "R", 0.1, 20.0),
    Param("exit_on_opposite_ut", bool, True, "Close on the opposite UT Bot signal at that bar's close", ""),
    Param("cooldown_bars", int, 0, "Bars to wait after a losing exit before a new entry", "bars", 0, 1000),
    Param(
        "risk_per_trade",
        float,
        0.01,
        "Equity risked between entry and stop",
        "fraction of equity",
        0.0001,
        0.1,
    ),
    Param("allow_short", bool, True, "Take short entries where the market allows shorts", ""),
    Param("leverage", float, 1.0, "Position notional cap as a multiple of equity", "x equity", 1.0, 100.0),
    Param("max_position_notional", float, 1_000_000.0, "Position notional cap", "quote currency", 1.0, 1e12),
)

TEMPLATES: Mapping[str, Mapping[str, ParamValue]] = {
    "conservative": {
        "ut_key": 3.0,
        "ha_confirm": True,
        "sl_atr_mult": 2.0,
        "tp_rr": 1.5,
        "cooldown_bars": 3,
        "risk_per_trade": 0.005,
        "allow_short": False,
    },
    "moderate": {
        "ut_key": 2.0,
        "ha_confirm": True,
        "sl_atr_mult": 1.5,
        "tp_rr": 2.0,
        "cooldown_bars": 0,
        "risk_per_trade": 0.01,
        "allow_short": True,
    },
    "aggressive": {
        "ut_key": 1.0,
        "ha_confirm": False,
        "sl_atr_mult": 1.0,
        "tp_rr": 2.5,
        "cooldown_bars": 0,
        "risk_per_trade": 0.02,
        "allow_short": True,
    },
}

# Parameters that shape the indicator columns. Bots equal on these share one indicator computation.
INDICATOR_PARAMS = (
    "ema_len",
    "ut_key",
    "ut_atr",
    "ut_use_ha",
    "ewo_fast",
    "ewo_slow",
    "stoch_rsi_len",
    "stoch_len",
    "stoch_k",
    "stoch_d",
    "atr_len",
)
