"""Where on the simulator's replay a fresh PPP Vishva bot enters next, so the browser test can start its
bot a couple of candles before an entry instead of waiting for one.

The approach of tests/strategy (test_live_parity): the strategy's batch rules on the same candles give
the signals the live bot emits. The candles are the simulator's own: its bundled files extended by its
seeded random walk, built here exactly as the simulator process builds them (same defaults).
"""

from __future__ import annotations

import numpy as np

from services.exchangesim.app import SimConfig, build_market
from services.strategy.candles import from_arrays
from services.strategy.registry import get_strategy

STRATEGY = get_strategy("ppp_vishva")
# The bot is started with at least this many closed candles left before its entry: one to start on,
# one spare for the pipeline (marketdata, strategy) to settle.
LEAD_CANDLES = 2


def next_entry_bar(minute: int, template: str, symbol: str, lookahead: int = 600) -> int:
    """Index of the first candle, at least LEAD_CANDLES after the one in progress at simulated
    `minute`, whose close gives an entry signal (long, or short where the template allows it)."""
    market, _ = build_market(SimConfig())
    series = market.series[symbol]
    step_ms = series.minutes * 60_000
    now_bar = minute // series.minutes
    bars = [series.candle(i) for i in range(now_bar + lookahead)]
    candles = from_arrays(
        [market.anchor_ms + i * step_ms for i in range(len(bars))],
        open_=[float(c.open) for c in bars],
        high=[float(c.high) for c in bars],
        low=[float(c.low) for c in bars],
        close=[float(c.close) for c in bars],
        volume=[float(c.volume) for c in bars],
    )
    params = STRATEGY.resolve(template, {})
    signals = STRATEGY.signals(candles, STRATEGY.indicators(candles, params), params, shorts_allowed=True)
    entries = np.flatnonzero(signals.long_entry | signals.short_entry)
    later = entries[entries >= now_bar + LEAD_CANDLES]
    if not len(later):
        raise AssertionError(f"no {template} entry within {lookahead} candles of candle {now_bar}")
    return int(later[0])
