"""Summary figures of live trading for the performance page, from execution's fills and PnL.

ExecutionService has no RPC for these (BacktestMetrics covers backtests only), so the page derives
them from what GetPnL and ListFills return: sums of the decimal strings for money, float for ratios.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise
from typing import Any


def closing_fills(fills: Sequence[Any]) -> list[Any]:
    """Fills that closed (part of) a position: they carry the trade's realised PnL."""
    return [f for f in fills if f.closed_size and Decimal(f.closed_size) != 0]


def trade_returns(fills: Sequence[Any]) -> list[float]:
    """Net return of each closing fill on its closed notional."""
    out = []
    for f in closing_fills(fills):
        notional = Decimal(f.closed_size) * Decimal(f.exec_price or "0")
        if notional:
            out.append(float((Decimal(f.realized_pnl or "0") - Decimal(f.exec_fee or "0")) / notional))
    return out


def win_rate(fills: Sequence[Any]) -> float | None:
    pnls = [Decimal(f.realized_pnl or "0") for f in closing_fills(fills)]
    return sum(1 for p in pnls if p > 0) / len(pnls) if pnls else None


def profit_factor(fills: Sequence[Any]) -> float | None:
    pnls = [Decimal(f.realized_pnl or "0") for f in closing_fills(fills)]
    gains = sum((p for p in pnls if p > 0), Decimal(0))
    losses = -sum((p for p in pnls if p < 0), Decimal(0))
    if not pnls:
        return None
    return math.inf if losses == 0 else float(gains / losses)


def max_drawdown(points: Sequence[Any]) -> float | None:
    return max((p.drawdown for p in points), default=None)


def sharpe(points: Sequence[Any], periods_per_year: float = 365.0) -> float | None:
    """Annualised Sharpe of the equity curve's step returns, risk-free rate 0."""
    equity = [float(p.equity) for p in points if p.equity]
    returns = [b / a - 1 for a, b in pairwise(equity) if a]
    if len(returns) < 2:
        return None
    spread = statistics.stdev(returns)
    return statistics.fmean(returns) / spread * math.sqrt(periods_per_year) if spread else None


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return "∞" if math.isinf(value) else f"{value:.2f}"
