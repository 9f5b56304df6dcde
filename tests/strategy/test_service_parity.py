"""End to end: bots running in the strategy service against the simulator's replay of a shared data file
emit exactly the signals the backtester produces on the same candles (same bars, sides, prices, stops
and targets), with marketdata and strategy as real processes on real NATS and PostgreSQL.

Execution is not part of this slice: the test plays its part, reporting each entry's fill on
`exec.position.<tenant>` at the price the backtester fills it (the next bar's open plus slippage)
before the next candle closes, as execution would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import events_pb2

from services.strategy.backtest.engine import BacktestConfig, run_backtest
from services.strategy.candles import load_csv
from services.strategy.registry import get_strategy
from services.strategy.sizing import Instrument
from tests.helpers.infra import Platform
from tests.strategy.service_slice import Slice, start_slice
from tests.strategy.signal_watch import (
    SignalWatch,
    bot_params,
    caught_up,
    fill_event,
    instrument,
    listed_signals,
    start_bots,
)

STRATEGY = get_strategy("ppp_vishva")
SLIPPAGE_BPS = 2.0
BOTS: list[tuple[str, dict[str, Any]]] = [
    ("aggressive", {"ema_len": 30}),
    ("moderate", {"ema_len": 50, "ut_key": 1.0, "ha_confirm": False}),
    ("conservative", {"ema_len": 40, "allow_short": True, "ut_key": 1.5, "cooldown_bars": 2}),
]
REPLAYED = 450  # candles evaluated live (the file's first ones; history before them is 20 bars)


@pytest.fixture
async def slice_(platform: Platform, tmp_path: Path) -> AsyncIterator[Slice]:
    running = await start_slice(platform, tmp_path, rows=REPLAYED + 30, history=20)
    yield running
    await running.stop()


def expected_signals(slice_: Slice, params: dict, last_bar: int, instrument: Instrument) -> list[tuple]:
    """The backtester's decisions as signals: (bar, action, side, reference, stop, take-profit)."""
    candles = load_csv(slice_.data_file).head(last_bar + 2)  # +1 bar so a last-bar entry can fill
    config = BacktestConfig(instrument=instrument, slippage_bps=SLIPPAGE_BPS)
    res = run_backtest(STRATEGY, candles, params, config)
    entries = {tr["signal_bar"]: tr for tr in res.trades if tr["signal_bar"] <= last_bar}
    out: list[tuple[int, str, str, float, float | None, float | None]] = []
    for tr in res.trades:
        if (
            tr["exit_reason"] == "opposite_signal"
            and tr["exit_bar"] <= last_bar
            and tr["exit_bar"] not in entries
        ):
            closing = "SIDE_SELL" if tr["side"] == "long" else "SIDE_BUY"
            out.append(
                (
                    tr["exit_bar"],
                    "SIGNAL_ACTION_EXIT",
                    closing,
                    float(candles.close[tr["exit_bar"]]),
                    None,
                    None,
                )
            )
    for t, tr in entries.items():
        side = 1 if tr["side"] == "long" else -1
        dist = float(res.signals.stop_distance[t])
        close = float(candles.close[t])
        reversing = any(
            other["exit_bar"] == t and other["exit_reason"] == "opposite_signal" for other in res.trades
        )
        action = "SIGNAL_ACTION_REVERSE" if reversing else "SIGNAL_ACTION_ENTRY"
        out.append(
            (t, action, "SIDE_BUY" if side > 0 else "SIDE_SELL", close, close - side * dist,
             close + side * float(params["tp_rr"]) * dist)
        )  # fmt: skip
    return sorted(out, key=lambda s: s[0])


async def test_live_bots_emit_the_backtesters_signals(slice_: Slice) -> None:
    bot_ids = await start_bots(slice_, BOTS)
    watch = await SignalWatch.start(slice_)
    candles = load_csv(slice_.data_file)
    step = candles.interval_ms
    first = slice_.first_live_bar()
    for t in range(first, first + REPLAYED - 25):
        slice_.sim.clock.advance(60)
        await caught_up(slice_, "candles", int(candles.timestamp[t]))
        for sig in watch.take(int(candles.timestamp[t])):
            if sig.action in (events_pb2.SIGNAL_ACTION_ENTRY, events_pb2.SIGNAL_ACTION_REVERSE):
                side = 1 if sig.side == common_pb2.SIDE_BUY else -1
                fill = float(candles.open[t + 1] * (1.0 + side * SLIPPAGE_BPS / 10_000))
                await slice_.publish_position(fill_event(sig, fill))
        await caught_up(slice_, "positions")
    last_bar = t
    ins = await instrument(slice_)
    compared = 0
    for bot_id, (template, overrides) in zip(bot_ids, BOTS, strict=True):
        live = [
            (int((s.candle_start.ToMilliseconds() - candles.timestamp[0]) // step),
             events_pb2.SignalAction.Name(s.action), common_pb2.Side.Name(s.side), float(s.reference_price),
             float(s.stop_loss) if s.stop_loss else None, float(s.take_profit) if s.take_profit else None)
            for s in watch.of(bot_id)
        ]  # fmt: skip
        expected = expected_signals(slice_, bot_params(template, overrides), last_bar, ins)
        assert live == expected, f"bot {template} {overrides}"
        compared += len(expected)
        listed = await listed_signals(slice_, bot_id, len(expected))
        assert sorted(s.id for s in listed) == sorted(s.id for s in watch.of(bot_id))
    print(f"compared {compared} signals")
    assert compared >= 10, f"only {compared} signals: the replay proves little"
