"""The live bank against the backtester: real candles fed bar by bar through one bank of several bots give
exactly the signals the backtester decides on the same candles (bar, side, action, reference price, stop,
take-profit), with each entry confirmed at the price the backtester fills it.

This is the parity the strategy service relies on: a bot running live emits the backtester's signals.
The backtester fills an entry at the next bar's open plus slippage; live, the execution service reports
that fill through `confirm_fill` before the next candle closes, which is what this test does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from services.strategy.backtest.engine import BacktestConfig, BacktestResult, run_backtest
from services.strategy.candles import Candles, load_csv
from services.strategy.errors import CandleError
from services.strategy.live.bank import BotBank
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument
from services.strategy.strategies.base import ParamValues
from tests.strategy.conftest import DATA, OHLCV_FILES

STRATEGY = get_strategy("ppp_vishva")
# Every bot in one bank: the three templates as they are, and distinct parameter sets that exercise
# shared and separate indicator groups, other window lengths, Heikin Ashi for UT Bot, cooldowns,
# shorts on a long-only template and exits on stop/target alone.
BOTS: list[tuple[str, dict[str, Any]]] = [
    ("conservative", {}),
    ("moderate", {}),
    ("aggressive", {}),
    ("moderate", {"ema_len": 20, "ewo_slow": 20, "cooldown_bars": 5}),
    ("aggressive", {"ut_use_ha": True, "stoch_len": 10, "stoch_k": 4, "stoch_d": 2, "stoch_lookback": 8}),
    ("conservative", {"ema_len": 30, "allow_short": True, "exit_on_opposite_ut": False, "tp_rr": 3.0}),
    (
        "aggressive",
        {"ema_len": 50, "ut_key": 1.5, "stoch_oversold": 30, "stoch_overbought": 70, "cooldown_bars": 2},
    ),
]
# Sizing never skips here: sizing is checked against the backtester in test_ppp_vishva; this test is
# about which signals are given and when.
CONFIG = BacktestConfig(
    instrument=Instrument(qty_step=Decimal("1e-9"), min_qty=Decimal("1e-9"), min_notional=Decimal(0)),
    fee_rate=0.00055,
    slippage_bps=2.0,
)
SLIP = CONFIG.slippage_bps / 10_000.0

Signal = tuple[int, str, float, float, float]  # bar, action, reference price, stop, take-profit


def bot_params() -> list[ParamValues]:
    return [STRATEGY.resolve(template, overrides) for template, overrides in BOTS]


def fill_price(candles: Candles, signal_bar: int, side: int) -> float:
    """The backtester's entry fill: the next bar's open plus slippage."""
    return float(candles.open[signal_bar + 1] * (1.0 + side * SLIP))


def exit_fill(reference: float, side: int, reason: str) -> float:
    """The backtester's fill for an exit at a reference price: stop and opposite-signal exits pay slippage."""
    return reference if reason == "take_profit" else reference * (1.0 - side * SLIP)


def backtest_signals(res: BacktestResult) -> list[Signal]:
    """What the backtester decided, as the live bank states it: entries at the signal bar's close with the
    stop and target from that close; exits at their bar, with the backtester's fill price."""
    close = res.candles.close
    out: list[Signal] = []
    for tr in res.trades:
        side = 1 if tr["side"] == "long" else -1
        t = tr["signal_bar"]
        dist = float(res.signals.stop_distance[t])
        tp_rr = float(res.params["tp_rr"])
        entry = float(close[t])
        out.append((t, f"enter_{tr['side']}", entry, entry - side * dist, entry + side * tp_rr * dist))
        if tr["exit_reason"] == "end_of_data":
            continue
        out.append((tr["exit_bar"], f"exit:{tr['exit_reason']}", tr["exit_price"], np.nan, np.nan))
    return sorted(out, key=lambda s: (s[0], s[1].startswith("enter")))


def run_live(candles: Candles, params: list[ParamValues]) -> list[list[Signal]]:
    """Every candle through one bank of all the bots; each entry confirmed at the backtester's fill."""
    bank = BotBank(STRATEGY, params, CONFIG.instrument, [CONFIG.initial_equity] * len(params))
    signals: list[list[Signal]] = [[] for _ in params]
    side = [0] * len(params)
    last = len(candles) - 1
    for t in range(len(candles)):
        decisions = bank.step(candles.open[t], candles.high[t], candles.low[t], candles.close[t])
        for dec in decisions:
            assert dec.action != "skipped", dec.reason
            if dec.action == "exit":
                fill = exit_fill(dec.price, side[dec.bot], dec.reason)
                signals[dec.bot].append((t, f"exit:{dec.reason}", fill, np.nan, np.nan))
                side[dec.bot] = 0
            elif t < last:  # the backtester cannot fill a signal on the last bar
                signals[dec.bot].append((t, dec.action, dec.price, dec.stop, dec.take_profit))
                side[dec.bot] = 1 if dec.action == "enter_long" else -1
                bank.confirm_fill(dec.bot, fill_price(candles, t, side[dec.bot]))
    return signals


def assert_same(live: list[Signal], expected: list[Signal], label: str) -> None:
    for j, (a, b) in enumerate(zip(live, expected, strict=False)):
        same = a[:2] == b[:2] and all(
            (np.isnan(x) and np.isnan(y)) or x == y for x, y in zip(a[2:], b[2:], strict=True)
        )
        assert same, f"{label}: signal {j} differs: live {a} vs backtest {b}"
    assert len(live) == len(expected), f"{label}: {len(live)} live signals vs {len(expected)} in the backtest"


def test_live_bank_emits_the_backtesters_signals(real_candles: Candles) -> None:
    params = bot_params()
    live = run_live(real_candles, params)
    compared = 0
    for i, p in enumerate(params):
        label = f"bot {i} {BOTS[i]}"
        try:
            res = run_backtest(STRATEGY, real_candles, p, CONFIG)
        except CandleError:  # too few candles for this bot's warm-up: live stays silent too
            assert live[i] == [], label
            continue
        assert res.skipped == []
        expected = backtest_signals(res)
        assert_same(live[i], expected, label)
        compared += len(expected)
    if len(real_candles) > 1000:
        assert compared > 50, "expected plenty of trades on the long files"


def test_confirmed_fill_sets_the_backtesters_stop_and_target() -> None:
    """After confirm_fill the bank holds the backtester's entry, stop and take-profit, to the bit."""
    if not OHLCV_FILES:
        pytest.skip(f"no OHLCV files under {DATA / 'ohlcv'}")
    candles = load_csv(max(OHLCV_FILES, key=lambda f: f.stat().st_size))
    params = bot_params()
    bank = BotBank(STRATEGY, params, CONFIG.instrument, [CONFIG.initial_equity] * len(params))
    trades = {
        (i, tr["signal_bar"]): tr
        for i, p in enumerate(params)
        for tr in run_backtest(STRATEGY, candles, p, CONFIG).trades
    }
    checked = 0
    for t in range(len(candles) - 1):
        for dec in bank.step(candles.open[t], candles.high[t], candles.low[t], candles.close[t]):
            if dec.action.startswith("enter"):
                tr = trades[(dec.bot, t)]
                bank.confirm_fill(dec.bot, tr["entry_price"])
                assert tr["entry_price"] == fill_price(candles, t, 1 if tr["side"] == "long" else -1)
                assert (bank.entry[dec.bot], bank.stop[dec.bot], bank.take_profit[dec.bot]) == (
                    tr["entry_price"],
                    tr["stop_loss"],
                    tr["take_profit"],
                ), f"bot {dec.bot} bar {t}"
                checked += 1
    assert checked > 50
