"""The backtest loop: next-bar-open fills, fees both sides, stop/take-profit on each bar's range.

Per bar t, in order:
1. a pending entry (signalled at t-1's close) fills at open[t] +/- slippage, sized from equity and the
   stop distance of the signal bar (qty step, minimum quantity and notional; otherwise skipped);
2. an open position is checked against bar t's low/high: the stop first (filled at the stop, or at the
   open when the bar opens beyond it, minus slippage), then the take-profit (at the target, or the open
   when it gaps beyond it);
3. at the close, the opposite signal exits at close -/+ slippage;
4. if flat and not cooling down, an entry signal at t's close becomes pending for t+1.
A losing exit at bar e blocks entry signals before bar e + cooldown_bars. Nothing reads past bar t.
A position still open at the end is closed at the last close ("end_of_data").

Brackets, the exit check and what counts as a losing exit come from `services.strategy.position`, which
the live bank applies too, so a bot live gives the signals a backtest gives (tests/strategy/
test_live_parity.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
from numba import njit

from services.strategy.backtest.metrics import compute_metrics
from services.strategy.candles import Candles
from services.strategy.errors import CandleError
from services.strategy.position import (
    END_OF_DATA,
    EXIT_REASONS,
    NO_EXIT,
    OPPOSITE_SIGNAL,
    TAKE_PROFIT,
    bar_exit,
    bracket,
    losing_exit,
)
from services.strategy.sizing import Instrument
from services.strategy.strategies.base import FloatArray, ParamValues, Signals, Strategy

# Trade record columns.
(T_SIDE, T_SIGNAL, T_ENTRY_BAR, T_ENTRY, T_QTY, T_STOP, T_TP, T_EXIT_BAR, T_EXIT, T_REASON, T_FEES, T_PNL) = (
    range(12)
)
SKIP_REASONS = ("below_min_qty", "below_min_notional", "no_stop_distance", "no_equity")


@njit(cache=True)
def _size(
    equity: float, price: float, dist: float, risk: float, lev: float, max_notional: float, step: float
) -> float:
    raw = min(equity * risk / dist, max_notional / price, equity * lev / price)
    return math.floor(raw / step) * step


@njit(cache=True)
def run_loop(
    op: Any,
    high: Any,
    low: Any,
    close: Any,
    long_entry: Any,
    short_entry: Any,
    long_exit: Any,
    short_exit: Any,
    stop_dist: Any,
    cfg: Any,
    start: int,
    stop_at: int,
    carry: Any,
    equity_out: Any,
    trades: Any,
    skipped: Any,
) -> Any:
    """Run bars [start, stop_at); `carry` holds the loop state between chunks (for progress reports)."""
    tp_rr, cooldown, risk, lev, max_notional = cfg[0], int(cfg[1]), cfg[2], cfg[3], cfg[4]
    step, min_qty, min_notional, fee, slip = cfg[5], cfg[6], cfg[7], cfg[8], cfg[9]
    cash, side, qty, entry, stop, tp, entry_fee = (
        carry[0],
        int(carry[1]),
        carry[2],
        carry[3],
        carry[4],
        carry[5],
        carry[6],
    )
    pending, signal_bar, cool_until = int(carry[7]), int(carry[8]), int(carry[9])
    n_trades, n_skipped, entry_bar = int(carry[10]), int(carry[11]), int(carry[12])
    n = close.size
    for t in range(start, stop_at):
        if pending != 0:
            fill = op[t] * (1.0 + pending * slip)
            dist = stop_dist[signal_bar]
            reason = -1
            if not dist > 0.0:
                reason = 2
            elif cash <= 0.0:
                reason = 3
            else:
                q = _size(cash, fill, dist, risk, lev, max_notional, step)
                if q < min_qty or q <= 0.0:
                    reason = 0
                elif q * fill < min_notional:
                    reason = 1
            if reason >= 0:
                skipped[n_skipped, 0] = signal_bar
                skipped[n_skipped, 1] = pending
                skipped[n_skipped, 2] = reason
                n_skipped += 1
            else:
                side = pending
                qty = q
                entry = fill
                stop, tp = bracket(fill, side, dist, tp_rr)
                entry_fee = qty * fill * fee
                cash -= entry_fee
                entry_bar = t
                trades[n_trades, T_SIGNAL] = signal_bar
            pending = 0
        exit_reason, exit_ref = bar_exit(side, stop, tp, op[t], high[t], low[t])
        if exit_reason == NO_EXIT and side != 0:
            opposite = long_exit[t] if side == 1 else short_exit[t]
            if opposite or t == n - 1:
                exit_reason = OPPOSITE_SIGNAL if opposite else END_OF_DATA
                exit_ref = close[t]
        if exit_reason >= 0:
            # Take-profit orders are limit orders: no slippage.
            exit_price = exit_ref if exit_reason == TAKE_PROFIT else exit_ref * (1.0 - side * slip)
            exit_fee = qty * exit_price * fee
            gross = side * (exit_price - entry) * qty
            cash += gross - exit_fee
            net = gross - entry_fee - exit_fee
            row = trades[n_trades]
            row[T_SIDE] = side
            row[T_ENTRY_BAR] = entry_bar
            row[T_ENTRY] = entry
            row[T_QTY] = qty
            row[T_STOP] = stop
            row[T_TP] = tp
            row[T_EXIT_BAR] = t
            row[T_EXIT] = exit_price
            row[T_REASON] = exit_reason
            row[T_FEES] = entry_fee + exit_fee
            row[T_PNL] = net
            n_trades += 1
            if losing_exit(side, entry, exit_ref):
                cool_until = t + cooldown
            side = 0
        if side == 0 and t + 1 < n and t >= cool_until:
            if long_entry[t]:
                pending = 1
                signal_bar = t
            elif short_entry[t]:
                pending = -1
                signal_bar = t
        equity_out[t] = cash + (side * (close[t] - entry) * qty if side != 0 else 0.0)
    carry[0], carry[1], carry[2], carry[3], carry[4], carry[5], carry[6] = (
        cash,
        side,
        qty,
        entry,
        stop,
        tp,
        entry_fee,
    )
    carry[7], carry[8], carry[9], carry[10], carry[11], carry[12] = (
        pending,
        signal_bar,
        cool_until,
        n_trades,
        n_skipped,
        entry_bar,
    )
    return carry


Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestConfig:
    instrument: Instrument = field(default_factory=Instrument)
    initial_equity: Decimal = Decimal("10000")
    fee_rate: float = 0.00055
    slippage_bps: float = 2.0


@dataclass
class BacktestResult:
    strategy: str
    params: ParamValues
    config: BacktestConfig
    candles: Candles
    columns: dict[str, FloatArray]
    signals: Signals
    equity: FloatArray
    trades: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    metrics: dict[str, Any]


def run_backtest(
    strategy: Strategy,
    candles: Candles,
    params: ParamValues,
    config: BacktestConfig | None = None,
    *,
    progress: Progress | None = None,
    chunk: int = 200_000,
) -> BacktestResult:
    config = config or BacktestConfig()
    need = strategy.warmup_bars(params) + 2
    if len(candles) < need:
        raise CandleError(
            f"{len(candles)} candles are too few: {strategy.name} with these parameters needs "
            f"at least {need} "
            f"({need - 2} warm-up bars, a signal bar and a fill bar)",
            field="data",
        )
    columns = strategy.indicators(candles, params)
    sig = strategy.signals(candles, columns, params, shorts_allowed=config.instrument.shorts_allowed)
    plan = strategy.exit_plan(params)
    ins = config.instrument
    cfg = np.array(
        [
            plan.tp_rr,
            plan.cooldown_bars,
            plan.risk_per_trade,
            plan.leverage,
            plan.max_position_notional,
            float(ins.qty_step),
            float(ins.min_qty),
            float(ins.min_notional),
            config.fee_rate,
            config.slippage_bps / 10_000.0,
        ]
    )
    n = len(candles)
    capacity = int(sig.long_entry.sum() + sig.short_entry.sum()) + 1
    trades = np.zeros((capacity, 12))
    skipped = np.zeros((capacity, 3))
    equity = np.empty(n)
    carry = np.array(
        [float(config.initial_equity), 0, 0, np.nan, np.nan, np.nan, 0, 0, 0, -1, 0, 0, 0], dtype=np.float64
    )
    for start in range(0, n, chunk):
        stop_at = min(n, start + chunk)
        run_loop(
            candles.open, candles.high, candles.low, candles.close,
            sig.long_entry, sig.short_entry, sig.long_exit, sig.short_exit, sig.stop_distance,
            cfg, start, stop_at, carry, equity, trades, skipped,
        )  # fmt: skip
        if progress is not None:
            progress(stop_at, n)
    trade_list = _trades(trades[: int(carry[10])], candles, sig, ins)
    skip_list = [
        {
            "signal_bar": int(b),
            "time": int(candles.timestamp[int(b)]),
            "side": "long" if s > 0 else "short",
            "reason": SKIP_REASONS[int(r)],
        }
        for b, s, r in skipped[: int(carry[11])]
    ]
    metrics = compute_metrics(candles, equity, trades[: int(carry[10])], float(config.initial_equity))
    return BacktestResult(
        strategy.name, params, config, candles, columns, sig, equity, trade_list, skip_list, metrics
    )


def _trades(rows: FloatArray, candles: Candles, sig: Signals, ins: Instrument) -> list[dict[str, Any]]:
    signal_bars = rows[:, T_SIGNAL].astype(np.int64)
    sides = rows[:, T_SIDE]
    reasons = sig.reasons_at(signal_bars, sides)
    out = []
    for j, row in enumerate(rows):
        steps = round(row[T_QTY] / float(ins.qty_step))
        out.append(
            {
                "side": "long" if row[T_SIDE] > 0 else "short",
                "signal_bar": int(row[T_SIGNAL]),
                "entry_bar": int(row[T_ENTRY_BAR]),
                "entry_time": int(candles.timestamp[int(row[T_ENTRY_BAR])]),
                "entry_price": float(row[T_ENTRY]),
                "qty": str(steps * ins.qty_step),
                "stop_loss": float(row[T_STOP]),
                "take_profit": float(row[T_TP]),
                "exit_bar": int(row[T_EXIT_BAR]),
                "exit_time": int(candles.timestamp[int(row[T_EXIT_BAR])]),
                "exit_price": float(row[T_EXIT]),
                "exit_reason": EXIT_REASONS[int(row[T_REASON])],
                "fees": float(row[T_FEES]),
                "pnl": float(row[T_PNL]),
                "reasons": reasons[j],
            }
        )
    return out
