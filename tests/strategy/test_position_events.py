"""The engine's view of a bot's position follows execution's position events as execution publishes them
(issue 7 point 3), with marketdata and strategy as real processes on real NATS and PostgreSQL.

Execution publishes a bot's position after each message from the exchange. The entry's execution message
comes before the exchange's position message, so right after an entry signal execution publishes the
position still flat (side unset, size 0) and then, a moment later, the short or long it holds. The engine
must keep the position through that flat event (else the bot's exits never fire while the exchange holds
it), and must still go flat when a filled position closes on the exchange. Without execution's address
configured here, StopBot(close_position) closes what the engine believes the bot holds: an EXIT on NATS.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tradebot.common.v1 import common_pb2
from tradebot.execution.v1 import events_pb2 as exec_pb
from tradebot.strategy.v1 import events_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.strategy.candles import load_csv
from tests.helpers.infra import Platform
from tests.strategy.service_slice import Slice, start_slice
from tests.strategy.signal_watch import SignalWatch, caught_up, fill_event, start_bots

# Identical parameters: the bots enter on the same candle, and each gets its own sequence of events.
BOT = ("aggressive", {"ema_len": 30})
ROWS = 420


@pytest.fixture
async def slice_(platform: Platform, tmp_path: Path) -> AsyncIterator[Slice]:
    running = await start_slice(platform, tmp_path, rows=ROWS, history=20)
    yield running
    await running.stop()


def flat_event(sig: events_pb2.Signal) -> exec_pb.PositionEvent:
    """The position execution publishes for an entry's execution message, before the exchange's position
    message has said what the account now holds."""
    return exec_pb.PositionEvent(
        event_id=f"flat-{uuid.uuid4().hex}",
        position=exec_pb.Position(
            tenant_id=sig.tenant_id,
            bot_id=sig.bot_id,
            category=sig.category,
            symbol=sig.symbol,
            side=common_pb2.SIDE_UNSPECIFIED,
            size="0",
            entry_price="0",
            mode=sig.mode,
        ),
    )


async def first_entries(slice_: Slice, watch: SignalWatch, bot_ids: list[str]) -> list[events_pb2.Signal]:
    """Step the market until every bot has signalled an entry; then the market stands still."""
    candles = load_csv(slice_.data_file)
    for t in range(slice_.first_live_bar(), ROWS - 2):
        slice_.sim.clock.advance(60)
        await caught_up(slice_, "candles", int(candles.timestamp[t]))
        entries = [
            s for s in watch.seen if s.action == events_pb2.SIGNAL_ACTION_ENTRY and s.bot_id in bot_ids
        ]
        if {s.bot_id for s in entries} == set(bot_ids):
            return sorted(entries, key=lambda s: bot_ids.index(s.bot_id))
    raise AssertionError(f"no entry for every bot in {ROWS} candles: {watch.seen}")


async def stop_closing(slice_: Slice, watch: SignalWatch, bot_id: str) -> list[events_pb2.Signal]:
    """StopBot(close_position) and the EXIT signals it published for the bot."""
    request = pb.StopBotRequest(bot_id=bot_id, close_position=True, reason="end of session")
    stopped = await slice_.stub().StopBot(request, metadata=slice_.token())
    assert stopped.bot.status == events_pb2.BOT_STATUS_STOPPED
    await slice_.nc.flush()
    await asyncio.sleep(0.5)  # the EXIT is published before StopBot answers; let it reach the watch
    return [s for s in watch.of(bot_id) if s.action == events_pb2.SIGNAL_ACTION_EXIT]


async def test_a_position_survives_the_flat_event_before_its_fill_and_ends_with_the_close(
    slice_: Slice,
) -> None:
    bot_ids = await start_bots(slice_, [BOT, BOT, BOT])
    before_fill, closed, replayed = bot_ids
    watch = await SignalWatch.start(slice_)
    entries = await first_entries(slice_, watch, bot_ids)
    entry = entries[0]
    assert {s.candle_start.ToMilliseconds() for s in entries} == {entry.candle_start.ToMilliseconds()}
    fill_price = float(entry.reference_price) * 1.001

    # As execution publishes them: flat (the entry's execution message), then the position.
    for sig in (entries[0], entries[2]):
        await slice_.publish_position(flat_event(sig))
        await slice_.publish_position(fill_event(sig, fill_price))
    # A position that filled and then closed on the exchange (its stop): the bot is flat.
    await slice_.publish_position(flat_event(entries[1]))
    await slice_.publish_position(fill_event(entries[1], fill_price))
    await slice_.publish_position(flat_event(entries[1]))
    await caught_up(slice_, "positions")

    exits = await stop_closing(slice_, watch, before_fill)
    assert len(exits) == 1, "the engine lost the position the exchange holds"
    assert exits[0].side != entry.side and exits[0].side != common_pb2.SIDE_UNSPECIFIED
    assert [r.name for r in exits[0].reasons] == ["user_stop"]

    # The stop changed the group's bots, so the others' state is rebuilt from the candles and the
    # journal's position updates: the replay must end where the live updates did.
    assert await stop_closing(slice_, watch, closed) == [], "a position closed on the exchange was kept"
    replayed_exits = await stop_closing(slice_, watch, replayed)
    assert len(replayed_exits) == 1, "the rebuild lost the position the exchange holds"
