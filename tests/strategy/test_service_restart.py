"""Crash-only: the strategy service is SIGKILLed while candles are streaming in and restarted while the
market moves on. Every decision of an uninterrupted run is signalled exactly once (on NATS and in
ListSignals, with the same ids), none is missed and none is doubled.

No execution events here: every entry counts as filled at its signal's close (the bank's assumption
until execution reports a fill), so the uninterrupted run is the trading core's bank fed every candle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import events_pb2

from services.strategy.candles import Candles, load_csv
from services.strategy.live.bank import BotBank
from services.strategy.signals import signal_id
from services.strategy.sizing import Instrument
from tests.helpers.infra import Platform
from tests.strategy.service_slice import Slice, start_slice
from tests.strategy.signal_watch import (
    STRATEGY,
    SignalWatch,
    bot_params,
    bots_warm,
    caught_up,
    instrument,
    listed_signals,
    start_bots,
)

BOTS: list[tuple[str, dict[str, Any]]] = [
    ("aggressive", {"ema_len": 30}),
    ("moderate", {"ema_len": 50, "ut_key": 1.0, "ha_confirm": False}),
    ("conservative", {"ema_len": 40, "allow_short": True, "ut_key": 1.5, "cooldown_bars": 2}),
    ("aggressive", {"ema_len": 20, "ut_key": 0.7, "stoch_oversold": 30, "stoch_overbought": 70}),
]
BEFORE, BURST, DOWN, AFTER = 130, 8, 30, 120  # candles: stepped, in flight at the kill, while down, after


@pytest.fixture
async def slice_(platform: Platform, tmp_path: Path) -> AsyncIterator[Slice]:
    running = await start_slice(platform, tmp_path, rows=20 + BEFORE + BURST + DOWN + AFTER + 5, history=20)
    yield running
    await running.stop()


Decided = tuple[int, str, str, str]  # candle start, action, side, reference price


def uninterrupted(
    candles: Candles, params: list[dict], ins: Instrument, first: int, last: int, bot_ids: list[str]
) -> dict[str, list[Decided]]:
    """The signals an uninterrupted run gives, by bot: the bank fed every candle, bots trading from
    `first`, decisions turned into signals as the engine turns them."""
    bank = BotBank(STRATEGY, params, ins, [Decimal(10000)] * len(params))
    out: dict[str, list[Decided]] = {b: [] for b in bot_ids}
    for t in range(last + 1):
        held = bank.side.copy()
        made = bank.step(candles.open[t], candles.high[t], candles.low[t], candles.close[t])
        start = int(candles.timestamp[t])
        for i, bot in enumerate(bot_ids):
            mine = [d for d in made if d.bot == i]
            entry = next((d for d in mine if d.action.startswith("enter")), None)
            exit_ = next((d for d in mine if d.action == "exit" and d.reason == "opposite_signal"), None)
            if t < first:
                if entry is not None:
                    bank.flatten(i, clear_cooldown=True)
                continue
            if entry is not None:
                action = "SIGNAL_ACTION_REVERSE" if exit_ else "SIGNAL_ACTION_ENTRY"
                side = "SIDE_BUY" if entry.action == "enter_long" else "SIDE_SELL"
                out[bot].append((start, action, side, repr(float(entry.price))))
            elif exit_ is not None:
                side = "SIDE_SELL" if held[i] > 0 else "SIDE_BUY"
                out[bot].append((start, "SIGNAL_ACTION_EXIT", side, repr(float(exit_.price))))
    return out


def as_decided(s: events_pb2.Signal) -> Decided:
    return (
        s.candle_start.ToMilliseconds(),
        events_pb2.SignalAction.Name(s.action),
        common_pb2.Side.Name(s.side),
        repr(float(s.reference_price)),
    )


async def stream_counts(slice_: Slice, bot_id: str) -> int:
    info = await slice_.nc.jetstream().stream_info("SIGNALS", subjects_filter=f"sig.tenant-a.{bot_id}")
    return (info.state.subjects or {}).get(f"sig.tenant-a.{bot_id}", 0)


async def test_a_kill_mid_replay_loses_and_doubles_no_signal(slice_: Slice) -> None:
    bot_ids = await start_bots(slice_, BOTS)
    watch = await SignalWatch.start(slice_)
    candles = load_csv(slice_.data_file)
    first = slice_.first_live_bar()
    for t in range(first, first + BEFORE):
        slice_.sim.clock.advance(60)
        await caught_up(slice_, "candles", int(candles.timestamp[t]))
    # A burst of candles, and the kill while the service is working through them.
    for _ in range(BURST):
        slice_.sim.clock.advance(60)
        await asyncio.sleep(0.01)
    slice_.strategy.kill()
    slice_.sim.clock.advance(60 * DOWN)  # the market moves on while the service is down
    await asyncio.sleep(0.5)
    await slice_.strategy.start()
    await slice_.reconnect()
    await bots_warm(slice_, len(BOTS))
    resumed = first + BEFORE + BURST + DOWN
    await caught_up(slice_, "candles", int(candles.timestamp[resumed - 1]))
    for t in range(resumed, resumed + AFTER):
        slice_.sim.clock.advance(60)
        await caught_up(slice_, "candles", int(candles.timestamp[t]))

    params = [bot_params(template, overrides) for template, overrides in BOTS]
    expected = uninterrupted(candles, params, await instrument(slice_), first, t, bot_ids)
    total = 0
    for bot_id in bot_ids:
        want = expected[bot_id]
        listed = await listed_signals(slice_, bot_id, len(want))
        assert sorted(as_decided(s) for s in listed) == want, "ListSignals differs from an uninterrupted run"
        assert len({s.id for s in listed}) == len(want)
        for s in listed:
            assert s.id == signal_id(bot_id, s.candle_start.ToMilliseconds(), s.action)
        assert await stream_counts(slice_, bot_id) == len(want), "a signal was published twice or not at all"
        seen_ids = [s.id for s in watch.of(bot_id)]
        assert set(seen_ids) == {s.id for s in listed}
        total += len(want)
    outage = {int(x) for x in candles.timestamp[first + BEFORE : first + BEFORE + BURST + DOWN]}
    across = sum(d[0] in outage for want in expected.values() for d in want)
    print(f"signals checked: {total}, {across} decided on candles in flight at the kill or while down")
    assert across >= 1, "no decision fell in the outage: the kill proved nothing"
    assert total >= 6, "too few signals for the test to prove anything"
