"""Display-only indicator lines for the chart page.

No RPC serves indicator series (Signal.indicators carries values only at signal candles), so the
chart computes them from the candles with the strategy's own library, `services.strategy.indicators`:
the same code the bots run, so the lines match what the bot saw. Nothing here decides a trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from services.strategy.indicators import EMA, EWO, HeikinAshi, StochRSI, UTBot
from services.strategy.strategies.ppp_vishva.params import PARAMS

DEFAULTS: dict[str, Any] = {p.name: p.default for p in PARAMS}


def parameter_values(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A bot's typed parameters (ParameterValue map) over the strategy's defaults, as plain values."""
    values = dict(DEFAULTS)
    for name, value in parameters.items():
        kind = value.WhichOneof("kind")
        if kind:
            values[name] = getattr(value, kind)
    return values


def compute(ohlc: Mapping[str, np.ndarray], params: Mapping[str, Any], heikin_ashi: bool) -> dict[str, Any]:
    """Candles to draw (plain or Heikin Ashi), EMA and UT Bot stop overlays, EWO and Stoch RSI panels."""
    o, h, low, c = (np.asarray(ohlc[k], dtype=np.float64) for k in ("open", "high", "low", "close"))
    shown = dict(ohlc)
    if heikin_ashi:
        ha = HeikinAshi().batch(o, h, low, c)
        shown = {**shown, "open": ha["open"], "high": ha["high"], "low": ha["low"], "close": ha["close"]}
    ema = EMA(int(params["ema_len"])).batch(c)["value"]
    ut = UTBot(float(params["ut_key"]), int(params["ut_atr"]), bool(params["ut_use_ha"])).batch(o, h, low, c)
    ewo = EWO(int(params["ewo_fast"]), int(params["ewo_slow"])).batch(c)["value"]
    stoch = StochRSI(
        int(params["stoch_rsi_len"]), int(params["stoch_len"]), int(params["stoch_k"]), int(params["stoch_d"])
    ).batch(c)
    return {
        "candles": shown,
        "lines": {f"EMA {params['ema_len']}": ema, "UT Bot stop": ut["stop"]},
        "panels": {"EWO": {"EWO": ewo}, "Stoch RSI": {"K": stoch["k"], "D": stoch["d"]}},
    }
