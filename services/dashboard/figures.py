"""Plotly figures for the performance, backtest and chart pages. Charts may use float; the amounts shown
as text elsewhere come straight from the decimal strings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

COMPACT = {"margin": {"l": 8, "r": 8, "t": 32, "b": 8}, "legend": {"orientation": "h", "y": -0.15}}


def equity_and_drawdown(points: Sequence[Any]) -> go.Figure:
    """Equity curve above its drawdown (EquityPoint: time, equity decimal string, drawdown fraction)."""
    times = [p.time.ToDatetime() for p in points]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=times, y=[float(p.equity) for p in points], name="equity"), 1, 1)
    fig.add_trace(
        go.Scatter(x=times, y=[-100 * p.drawdown for p in points], name="drawdown %", fill="tozeroy"), 2, 1
    )
    fig.update_layout(height=420, title="Equity and drawdown", **COMPACT)
    return fig


def returns_histogram(returns: Sequence[float]) -> go.Figure:
    fig = go.Figure(go.Histogram(x=[100 * r for r in returns], nbinsx=30, name="trades"))
    fig.update_layout(height=300, title="Trade returns (%)", **COMPACT)
    return fig


def calendar_heatmap(daily: Sequence[tuple[str, Decimal]]) -> go.Figure:
    """Daily PnL as weeks (columns) x weekdays (rows), red for losing days, green for winning ones."""
    if not daily:
        return go.Figure()
    days = [(date.fromisoformat(d), float(v)) for d, v in daily]
    first = days[0][0]
    start = first.toordinal() - first.weekday()
    weeks = (days[-1][0].toordinal() - start) // 7 + 1
    grid: list[list[float | None]] = [[None] * weeks for _ in range(7)]
    labels: list[list[str]] = [[""] * weeks for _ in range(7)]
    for (day, value), (iso, text) in zip(days, daily, strict=True):
        week = (day.toordinal() - start) // 7
        grid[day.weekday()][week] = value
        labels[day.weekday()][week] = f"{iso}: {text}"
    limit = max((abs(v) for _, v in days), default=1.0) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=grid,
            text=labels,
            hoverinfo="text",
            y=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
            colorscale=[[0, "#c62828"], [0.5, "#f5f5f5"], [1, "#2e7d32"]],
            zmin=-limit,
            zmax=limit,
            xgap=2,
            ygap=2,
        )
    )
    fig.update_layout(height=260, title="Daily PnL", **COMPACT)
    fig.update_xaxes(showticklabels=False)
    return fig


def candles(
    frame: dict[str, Any], lines: dict[str, Sequence[float]], panels: dict[str, dict[str, Sequence[float]]]
) -> go.Figure:
    """Candles with overlay lines, one lower panel per entry of `panels`, and markers added later."""
    rows = 1 + len(panels)
    heights = [0.6] + [0.4 / max(1, len(panels))] * len(panels)
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, row_heights=heights, vertical_spacing=0.03)
    fig.add_trace(
        go.Candlestick(
            x=frame["time"],
            open=frame["open"],
            high=frame["high"],
            low=frame["low"],
            close=frame["close"],
            name="price",
        ),
        1,
        1,
    )
    for name, values in lines.items():
        fig.add_trace(go.Scatter(x=frame["time"], y=_gaps(values), name=name, mode="lines"), 1, 1)
    for row, (title, series) in enumerate(panels.items(), start=2):
        for name, values in series.items():
            fig.add_trace(go.Scatter(x=frame["time"], y=_gaps(values), name=name, mode="lines"), row, 1)
        fig.update_yaxes(title_text=title, row=row, col=1)
    fig.update_layout(height=640, xaxis_rangeslider_visible=False, **COMPACT)
    return fig


def add_markers(
    fig: go.Figure, name: str, times: list[Any], prices: list[float], hovers: list[str], up: bool
) -> None:
    fig.add_trace(
        go.Scatter(
            x=times,
            y=prices,
            mode="markers",
            name=name,
            marker={
                "symbol": "triangle-up" if up else "triangle-down",
                "size": 13,
                "color": "#2e7d32" if up else "#c62828",
            },
            hovertext=hovers,
            hoverinfo="text",
        ),
        1,
        1,
    )


def _gaps(values: Sequence[float]) -> list[float | None]:
    """NaN (indicator warm-up) as gaps."""
    return [None if math.isnan(v) else float(v) for v in values]
