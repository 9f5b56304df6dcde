"""Backtest reports: report.json, a self-contained report.html (Plotly inlined) and equity.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from services.strategy.backtest.engine import BacktestResult


def to_dict(result: BacktestResult) -> dict[str, Any]:
    c = result.candles
    return {
        "strategy": result.strategy,
        "params": result.params,
        "config": {
            "initial_equity": str(result.config.initial_equity),
            "fee_rate": result.config.fee_rate,
            "slippage_bps": result.config.slippage_bps,
            "qty_step": str(result.config.instrument.qty_step),
            "min_qty": str(result.config.instrument.min_qty),
            "min_notional": str(result.config.instrument.min_notional),
            "shorts_allowed": result.config.instrument.shorts_allowed,
        },
        "data": {
            "bars": len(c),
            "first_time": int(c.timestamp[0]),
            "last_time": int(c.timestamp[-1]),
            "interval_ms": c.interval_ms,
            "gaps": len(c.gaps),
            "missing_bars": sum(g.missing_bars for g in c.gaps),
        },
        "metrics": result.metrics,
        "trades": result.trades,
        "skipped_signals": result.skipped,
    }


def write_json(result: BacktestResult, path: Path) -> None:
    path.write_text(json.dumps(to_dict(result), indent=2) + "\n")


def write_png(result: BacktestResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = result.candles.timestamp.astype("datetime64[ms]")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=[3, 1])
    top.plot(times, result.equity, lw=1)
    top.set_ylabel("equity")
    top.set_title(f"{result.strategy}: equity")
    peak = np.maximum.accumulate(result.equity)
    bottom.fill_between(times, -(1 - result.equity / peak) * 100, 0, color="tab:red", alpha=0.5)
    bottom.set_ylabel("drawdown %")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_html(result: BacktestResult, path: Path, max_points: int = 20_000) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    c = result.candles
    step = max(1, len(c) // max_points)  # long runs are thinned for the chart only
    idx = np.arange(0, len(c), step)
    times = c.timestamp[idx].astype("datetime64[ms]")
    fig = make_subplots(
        rows=3, cols=1, shared_xaxes=True, row_heights=[0.6, 0.25, 0.15], vertical_spacing=0.03
    )
    fig.add_trace(
        go.Candlestick(
            x=times, open=c.open[idx], high=c.high[idx], low=c.low[idx], close=c.close[idx], name="candles"
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=times, y=result.columns["ut_stop"][idx], name="UT Bot stop", line={"width": 1}),
        row=1,
        col=1,
    )
    for side, symbol, color in (("long", "triangle-up", "green"), ("short", "triangle-down", "red")):
        chosen = [t for t in result.trades if t["side"] == side]
        fig.add_trace(
            go.Scatter(
                x=np.array([t["entry_time"] for t in chosen], dtype="datetime64[ms]"),
                y=[t["entry_price"] for t in chosen],
                mode="markers",
                marker={"symbol": symbol, "color": color, "size": 9},
                name=f"{side} entry",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Scatter(
            x=np.array([t["exit_time"] for t in result.trades], dtype="datetime64[ms]"),
            y=[t["exit_price"] for t in result.trades],
            mode="markers",
            marker={"symbol": "x", "color": "black", "size": 7},
            name="exit",
            text=[t["exit_reason"] for t in result.trades],
        ),
        row=1,
        col=1,
    )
    fig.add_trace(go.Scatter(x=times, y=result.equity[idx], name="equity"), row=2, col=1)
    peak = np.maximum.accumulate(result.equity)
    fig.add_trace(
        go.Scatter(x=times, y=-(1 - result.equity / peak)[idx] * 100, name="drawdown %", fill="tozeroy"),
        row=3,
        col=1,
    )
    fig.update_layout(height=900, xaxis_rangeslider_visible=False, title=f"{result.strategy} backtest")
    chart = fig.to_html(full_html=False, include_plotlyjs="inline")
    rows = "".join(
        f"<tr><td>{t['side']}</td><td>{t['entry_bar']}</td><td>{t['entry_price']:.6g}</td><td>{t['qty']}</td>"
        f"<td>{t['exit_bar']}</td><td>{t['exit_price']:.6g}</td><td>{t['exit_reason']}</td><td>{t['pnl']:.2f}</td></tr>"
        for t in result.trades
    )
    metrics = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in result.metrics.items())
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Backtest report</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        f"<h1>{result.strategy} backtest</h1><h2>Metrics</h2><table>{metrics}</table>{chart}"
        "<h2>Trades</h2><table><tr><th>side</th><th>entry bar</th><th>entry</th><th>qty</th><th>exit bar</th>"
        f"<th>exit</th><th>reason</th><th>pnl</th></tr>{rows}</table></body></html>"
    )


def write_all(result: BacktestResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json", out_dir / "report.html", out_dir / "equity.png"]
    write_json(result, paths[0])
    write_html(result, paths[1])
    write_png(result, paths[2])
    return paths
