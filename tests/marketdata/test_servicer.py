"""The RPCs in-process against the simulator and a real PostgreSQL: history served in pages (completed
from the exchange), instruments, tickers, and bad requests refused naming the field at fault."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.common.v1 import common_pb2
from tradebot.marketdata.v1 import marketdata_service_pb2 as pb

from services.common.context import Principal, Role, bind_principal
from services.common.errors import InvalidArgument, NotFound, PermissionDenied
from services.exchangesim.app import Simulator
from services.marketdata.servicer import MarketDataServicer
from tests.marketdata.helpers import truth

LINEAR = common_pb2.CATEGORY_LINEAR
MINUTE = common_pb2.INTERVAL_1_MINUTE
NO_CONTEXT: Any = None  # servicer methods called directly take no gRPC context


def ts(ms: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromMilliseconds(ms)
    return stamp


async def test_get_candles_pages_a_range_completed_from_the_exchange(
    servicer: MarketDataServicer, sim: Simulator, symbol: str
) -> None:
    now = sim.venue.market.now_ms()
    start, end = now - 150 * 60_000, now + 5 * 60_000  # the range runs past the candle in progress
    request = pb.GetCandlesRequest(category=LINEAR, symbol=symbol, interval=MINUTE, page_size=60)
    request.time_range.start.CopyFrom(ts(start))
    request.time_range.end.CopyFrom(ts(end))
    candles, pages = [], 0
    while True:
        reply = await servicer.GetCandles(request, NO_CONTEXT)
        candles.extend(reply.candles)
        pages += 1
        if not reply.next_page_token:
            break
        request.page_token = reply.next_page_token
    starts = [c.start.ToMilliseconds() for c in candles]
    assert starts == list(range(start, now, 60_000))  # every closed candle once; not the one in progress
    assert pages == 3
    for candle in candles:
        assert candle.confirmed
        got = (candle.open, candle.high, candle.low, candle.close, candle.volume, candle.turnover)
        assert got == truth(sim, symbol, "1", candle.start.ToMilliseconds())
    # Served again from storage, the same.
    request.page_token = ""
    again = await servicer.GetCandles(request, NO_CONTEXT)
    assert list(again.candles) == candles[:60]


async def test_instruments_and_tickers(servicer: MarketDataServicer, symbol: str) -> None:
    reply = await servicer.ListInstruments(
        pb.ListInstrumentsRequest(category=LINEAR, trading_only=True), NO_CONTEXT
    )
    (instrument,) = [i for i in reply.instruments if i.symbol == symbol]
    assert instrument.tick_size and instrument.qty_step and instrument.min_qty and instrument.min_notional
    assert instrument.max_leverage and instrument.status == common_pb2.INSTRUMENT_STATUS_TRADING
    spot = await servicer.ListInstruments(
        pb.ListInstrumentsRequest(category=common_pb2.CATEGORY_SPOT), NO_CONTEXT
    )
    assert spot.instruments[0].max_leverage == ""  # spot has no leverage
    ticker = await servicer.GetTicker(pb.GetTickerRequest(category=LINEAR, symbol=symbol), NO_CONTEXT)
    assert ticker.ticker.symbol == symbol and ticker.ticker.last_price


def candles_request(symbol: str, **fields: Any) -> pb.GetCandlesRequest:
    return pb.GetCandlesRequest(**{"category": LINEAR, "symbol": symbol, "interval": MINUTE, **fields})


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("unknown symbol", "symbol", "unknown symbol NOPEUSDT"),
        ("no interval", "interval", "unknown interval"),
        ("no category", "category", "category"),
        ("inverted range", "time_range", "end must be after"),
        ("page too large", "page_size", "at most 1000"),
        ("foreign token", "page_token", "page_token"),
    ],
)
async def test_bad_candle_requests_are_refused_naming_the_problem(
    servicer: MarketDataServicer, symbol: str, case: str, field: str, words: str
) -> None:
    request = {
        "unknown symbol": candles_request("NOPEUSDT"),
        "no interval": candles_request(symbol, interval=0),
        "no category": candles_request(symbol, category=0),
        "inverted range": candles_request(symbol),
        "page too large": candles_request(symbol, page_size=5000),
        "foreign token": candles_request(symbol, page_token="bm90LW91cnM="),
    }[case]
    if case == "inverted range":
        request.time_range.start.CopyFrom(ts(2_000_000))
        request.time_range.end.CopyFrom(ts(1_000_000))
    with pytest.raises(InvalidArgument) as refused:
        await servicer.GetCandles(request, NO_CONTEXT)
    assert refused.value.field == field and words in str(refused.value)


async def test_unknown_ticker_is_not_found_and_subscriptions_are_for_services(
    servicer: MarketDataServicer,
) -> None:
    with pytest.raises(NotFound, match="unknown symbol NOPEUSDT"):
        await servicer.GetTicker(pb.GetTickerRequest(category=LINEAR, symbol="NOPEUSDT"), NO_CONTEXT)
    with pytest.raises(PermissionDenied):
        await servicer.EnsureSubscriptions(pb.EnsureSubscriptionsRequest(caller_id="x"), NO_CONTEXT)


async def test_ensure_subscriptions_reports_unknown_symbols_as_failed(
    servicer: MarketDataServicer, symbol: str
) -> None:
    bind_principal(Principal(user_id="service:strategy", tenant_id="", role=Role.SERVICE))
    request = pb.EnsureSubscriptionsRequest(caller_id="strategy-0")
    request.subscriptions.add(category=LINEAR, symbol=symbol, interval=MINUTE)
    request.subscriptions.add(category=LINEAR, symbol="NOPEUSDT", interval=MINUTE)
    reply = await servicer.EnsureSubscriptions(request, NO_CONTEXT)
    states = [s.state for s in reply.subscriptions]
    assert states == [pb.SUBSCRIPTION_STATE_PENDING, pb.SUBSCRIPTION_STATE_FAILED]
    assert "NOPEUSDT" in reply.subscriptions[1].message
    released = await servicer.ReleaseSubscriptions(
        pb.ReleaseSubscriptionsRequest(caller_id="strategy-0"), NO_CONTEXT
    )
    assert released.released_count == 1
    request.lease_ttl.FromSeconds(5)
    with pytest.raises(InvalidArgument, match="lease_ttl"):
        await servicer.EnsureSubscriptions(request, NO_CONTEXT)
