"""Backtester: no look-ahead (property-based), fills, costs, skipped signals, progress."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.strategy.backtest.engine import BacktestConfig, run_backtest
from services.strategy.errors import CandleError
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument
from tests.strategy.conftest import synthetic

STRATEGY = get_strategy("ppp_vishva")
PARAMS = STRATEGY.resolve("aggressive", {"ema_len": 20, "ewo_slow": 20})
CONFIG = BacktestConfig(
    instrument=Instrument(qty_step=Decimal("0.001"), min_qty=Decimal("0.001"), min_notional=Decimal(0))
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(150, 1500), cut=st.floats(0.3, 0.95))
def test_no_look_ahead(seed: int, n: int, cut: float) -> None:
    """Indicators, signals, equity and trades closed up to bar t do not change when bars are appended."""
    full = synthetic(n, seed=seed)
    t = int(n * cut)
    head = full.head(t)
    a = run_backtest(STRATEGY, head, PARAMS, CONFIG)
    b = run_backtest(STRATEGY, full, PARAMS, CONFIG)
    for name, col in a.columns.items():
        assert np.array_equal(col, b.columns[name][:t], equal_nan=True), name
    assert np.array_equal(a.signals.long_entry, b.signals.long_entry[:t])
    assert np.array_equal(a.signals.short_entry, b.signals.short_entry[:t])
    # The head run closes any open position at its last bar; trades closed before that must agree.
    closed_a = [x for x in a.trades if x["exit_bar"] < t - 1]
    closed_b = [x for x in b.trades if x["exit_bar"] < t - 1]
    assert closed_a == closed_b
    last_open = min([x["entry_bar"] for x in a.trades if x["exit_reason"] == "end_of_data"] or [t - 1])
    assert np.array_equal(a.equity[:last_open], b.equity[:last_open])


def test_fills_costs_and_stop_first() -> None:
    c = synthetic(5000, seed=3)
    res = run_backtest(
        STRATEGY, c, PARAMS, BacktestConfig(instrument=CONFIG.instrument, fee_rate=0.001, slippage_bps=5)
    )
    assert res.trades
    slip = 5 / 10_000
    for tr in res.trades:
        side = 1 if tr["side"] == "long" else -1
        assert tr["entry_price"] == pytest.approx(c.open[tr["entry_bar"]] * (1 + side * slip), rel=1e-12)
        qty = float(tr["qty"])
        expected_fees = qty * (tr["entry_price"] + tr["exit_price"]) * 0.001
        assert tr["fees"] == pytest.approx(expected_fees, rel=1e-9)
        bar = tr["exit_bar"]
        touched_stop = c.low[bar] <= tr["stop_loss"] if side == 1 else c.high[bar] >= tr["stop_loss"]
        if touched_stop and tr["exit_bar"] >= tr["entry_bar"]:
            assert tr["exit_reason"] == "stop_loss"  # stop counts first, even when the target was touched too
    assert res.metrics["fees_paid"] == pytest.approx(sum(t["fees"] for t in res.trades))
    assert res.metrics["trade_count"] == len(res.trades)
    final = float(CONFIG.initial_equity) + sum(t["pnl"] for t in res.trades)
    assert res.equity[-1] == pytest.approx(final, rel=1e-9)


def test_below_minimum_is_skipped_with_reason() -> None:
    c = synthetic(3000, seed=5)
    huge_min = BacktestConfig(instrument=Instrument(min_notional=Decimal(10**9)))
    res = run_backtest(STRATEGY, c, PARAMS, huge_min)
    assert not res.trades and res.skipped
    assert {s["reason"] for s in res.skipped} == {"below_min_notional"}


def test_progress_is_reported() -> None:
    c = synthetic(2000, seed=1)
    seen: list[tuple[int, int]] = []
    run_backtest(
        STRATEGY, c, PARAMS, CONFIG, progress=lambda done, total: seen.append((done, total)), chunk=500
    )
    assert seen == [(500, 2000), (1000, 2000), (1500, 2000), (2000, 2000)]


def test_too_few_bars_for_warm_up() -> None:
    with pytest.raises(CandleError, match="too few"):
        run_backtest(STRATEGY, synthetic(50), STRATEGY.resolve("moderate"), CONFIG)
