"""StreamCandles: the confirmed candles since `since` first, then each candle as it closes (from NATS),
never one twice, and the exchange subscription held only while the stream is open."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.common.v1 import common_pb2
from tradebot.marketdata.v1 import marketdata_service_pb2 as pb

from services.exchangesim.app import Simulator
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.servicer import MarketDataServicer
from tests.marketdata.helpers import eventually, truth

MINUTE_MS = 60_000
NO_CONTEXT: Any = None


async def one_candle(servicer: MarketDataServicer, key: StreamKey, start: int) -> Candle:
    """The exchange's closed candle at `start`, as the feed would publish it."""
    (row,) = await servicer._market.kline_page(key, start=start, end=start, limit=1)
    return Candle.from_rest(key, row, confirmed=True)


async def test_replays_then_streams_live_candles_once_and_releases_its_subscription(
    servicer: MarketDataServicer, sim: Simulator, symbol: str
) -> None:
    now = sim.venue.market.now_ms()
    newest_closed = now - now % MINUTE_MS - MINUTE_MS
    since = Timestamp()
    since.FromMilliseconds(newest_closed - 9 * MINUTE_MS)
    request = pb.StreamCandlesRequest(
        category=common_pb2.CATEGORY_LINEAR, symbol=symbol, interval=common_pb2.INTERVAL_1_MINUTE, since=since
    )
    received: list[pb.StreamCandlesResponse] = []

    async def consume() -> None:
        async for reply in servicer.StreamCandles(request, NO_CONTEXT):
            received.append(reply)

    task = asyncio.create_task(consume())
    await eventually(lambda: len(received) >= 10, 20, "the replayed candles")
    replayed = [r for r in received if r.replay]
    starts = [r.candle.start.ToMilliseconds() for r in replayed]
    assert starts == list(range(newest_closed - 9 * MINUTE_MS, newest_closed + 1, MINUTE_MS))
    for reply in replayed:
        got = (reply.candle.open, reply.candle.high, reply.candle.low, reply.candle.close)
        assert got == truth(sim, symbol, "1", reply.candle.start.ToMilliseconds())[:4]
    key = StreamKey.from_proto(request.category, symbol, request.interval)
    assert key in servicer._demand.wanted(), "an open stream must hold its exchange subscription"

    # The next candle closes: the feed publishes it on NATS, and the stream passes it on, once.
    sim.clock.advance(1)
    closed = await one_candle(servicer, key, newest_closed + MINUTE_MS)
    bus = servicer._bus
    assert bus is not None
    event = closed.event(int(time.time() * 1000), backfilled=False)
    await bus.publish(key.subject, event, event.event_id)
    old = await one_candle(servicer, key, newest_closed)
    stale = old.event(int(time.time() * 1000), backfilled=True)
    await bus.publish(key.subject, stale, stale.event_id + ".again")  # an older candle: not sent again
    await eventually(lambda: any(not r.replay for r in received), 10, "the live candle")
    await asyncio.sleep(0.3)
    live = [r.candle.start.ToMilliseconds() for r in received if not r.replay]
    assert live == [newest_closed + MINUTE_MS]

    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert key not in servicer._demand.wanted(), "a closed stream must release its subscription"
