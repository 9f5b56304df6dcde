"""Backtest metrics from the equity curve and the closed trades (names as in report.json)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from services.strategy.candles import Candles

MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
# Trade record columns (see engine.py).
_ENTRY_BAR, _EXIT_BAR, _FEES, _PNL = 2, 7, 10, 11


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def compute_metrics(candles: Candles, equity: Any, trades: Any, initial: float) -> dict[str, Any]:
    n = len(equity)
    final = float(equity[-1])
    span_ms = float(candles.timestamp[-1] - candles.timestamp[0]) + candles.interval_ms
    years = span_ms / MS_PER_YEAR
    total_return = final / initial - 1.0
    cagr = (final / initial) ** (1.0 / years) - 1.0 if years > 0 and final > 0 else math.nan
    curve = np.concatenate([[initial], equity])
    returns = curve[1:] / curve[:-1] - 1.0
    bars_per_year = MS_PER_YEAR / candles.interval_ms if candles.interval_ms else math.nan
    std = returns.std()
    downside = np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))
    sharpe = returns.mean() / std * math.sqrt(bars_per_year) if std > 0 else math.nan
    sortino = returns.mean() / downside * math.sqrt(bars_per_year) if downside > 0 else math.nan
    peak = np.maximum.accumulate(curve)
    drawdown = 1.0 - curve / peak
    # Longest stretch below a previous peak, in bars (curve index 0 is the start before bar 0).
    underwater = drawdown > 0
    longest = 0
    if underwater.any():
        edges = np.diff(np.concatenate([[0], underwater.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        longest = int((ends - starts).max())
    pnl = trades[:, _PNL]
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    held_bars = trades[:, _EXIT_BAR] - trades[:, _ENTRY_BAR] + 1
    in_market = int(held_bars.sum())
    gross_loss = -losses.sum()
    return {
        "total_return": total_return,
        "cagr": _finite(cagr),
        "win_rate": _finite(len(wins) / len(pnl)) if len(pnl) else None,
        "profit_factor": _finite(wins.sum() / gross_loss) if gross_loss > 0 else None,
        "max_drawdown": float(drawdown.max()),
        "max_drawdown_duration_bars": longest,
        "max_drawdown_duration_seconds": longest * candles.interval_ms / 1000.0,
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "expectancy": float(pnl.mean()) if len(pnl) else None,
        "exposure": in_market / n,
        "trade_count": len(pnl),
        "average_holding_bars": float(held_bars.mean()) if len(pnl) else None,
        "average_holding_time_seconds": float(held_bars.mean()) * candles.interval_ms / 1000.0
        if len(pnl)
        else None,
        "fees_paid": float(trades[:, _FEES].sum()),
        "final_equity": final,
        "bars": n,
    }
