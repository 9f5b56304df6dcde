"""MarketDataService over gRPC: request checks, paging tokens, and answers from the parts that own them.

Every RPC is open to any authenticated caller (users of any role and platform services);
EnsureSubscriptions and ReleaseSubscriptions only to platform services. Errors are domain errors
naming the field at fault; the shared interceptor maps them to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
from nats.aio.msg import Msg
from tradebot.common.v1 import common_pb2
from tradebot.marketdata.v1 import events_pb2
from tradebot.marketdata.v1 import marketdata_service_pb2 as pb
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as rpc

from services.common import paging
from services.common.auth import require_reader, require_service
from services.common.bus import Bus
from services.common.context import current_principal
from services.common.errors import InvalidArgument, NotFound, Unavailable
from services.common.market import category_name, interval_ms
from services.marketdata.demand import DEFAULT_TTL, MAX_TTL, MIN_TTL, Demand
from services.marketdata.domain import Candle, StreamKey, timestamp
from services.marketdata.exchange import BybitMarket
from services.marketdata.gaps import State
from services.marketdata.instruments import InstrumentCatalog
from services.marketdata.ranges import CandleRanges
from services.marketdata.store import Store
from services.marketdata.streams import CandleStreams
from services.marketdata.tickers import TickerBook, ticker_from_bybit

log = logging.getLogger("tradebot.marketdata.servicer")

DEFAULT_PAGE = 500
MAX_PAGE = 1000
REPLAY_LIMIT = 1000
STREAM_LEASE = timedelta(minutes=2)
STATES = {
    State.PENDING: pb.SUBSCRIPTION_STATE_PENDING,
    State.BACKFILLING: pb.SUBSCRIPTION_STATE_BACKFILLING,
    State.ACTIVE: pb.SUBSCRIPTION_STATE_ACTIVE,
    State.FAILED: pb.SUBSCRIPTION_STATE_FAILED,
}


class MarketDataServicer(rpc.MarketDataServiceServicer):
    def __init__(
        self,
        *,
        catalog: InstrumentCatalog,
        store: Store,
        ranges: CandleRanges,
        market: BybitMarket,
        demand: Demand,
        streams: CandleStreams,
        tickers: TickerBook,
        bus: Bus | None,
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._ranges = ranges
        self._market = market
        self._demand = demand
        self._streams = streams
        self._tickers = tickers
        self._bus = bus

    # instruments -------------------------------------------------------------------------------
    async def ListInstruments(
        self, request: pb.ListInstrumentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListInstrumentsResponse:
        require_reader(current_principal())
        category = category_name(request.category)
        size = paging.page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        after = paging.page_position(request) or ""
        wanted = {s.upper() for s in request.symbols}
        chosen = [
            instrument
            for symbol, instrument in (await self._catalog.instruments(category)).items()
            if symbol > after
            and (not wanted or symbol in wanted)
            and (not request.trading_only or instrument.status == common_pb2.INSTRUMENT_STATUS_TRADING)
        ]
        page = chosen[:size]
        token = paging.next_page_token(request, page[-1].symbol) if len(chosen) > size else ""
        return pb.ListInstrumentsResponse(instruments=page, next_page_token=token)

    async def _stream_key(
        self, category: int, symbol: str, interval: int, *, missing: Any = InvalidArgument
    ) -> StreamKey:
        key = StreamKey.from_proto(category, symbol, interval)
        await self._catalog.require(key.category, key.symbol, missing=missing)
        return key

    # candles -------------------------------------------------------------------------------------
    async def GetCandles(
        self, request: pb.GetCandlesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCandlesResponse:
        require_reader(current_principal())
        key = StreamKey.from_proto(request.category, request.symbol, request.interval)
        size = paging.page_size(request.page_size, default=DEFAULT_PAGE, maximum=MAX_PAGE)
        window = request.time_range
        start = window.start.ToMilliseconds() if window.HasField("start") else None
        end = window.end.ToMilliseconds() if window.HasField("end") else int(time.time() * 1000)
        if start is not None and end <= start:
            raise InvalidArgument("time_range.end must be after time_range.start", field="time_range")
        await self._catalog.require(key.category, key.symbol)
        resume = paging.page_position(request)
        if resume is not None:
            start = int(resume)
        elif start is None:
            oldest, _ = await self._store.bounds(key)
            start = oldest if oldest is not None else end - size * interval_ms(key.interval)
        sequencer = self._streams.sequencers.get(key)
        newest = (
            sequencer.last_published if sequencer is not None and sequencer.state is State.ACTIVE else None
        )
        page = await self._ranges.page(key, start, end, size, newest_closed=newest)
        candles = [c.to_proto() for c in page.candles]
        if request.include_unconfirmed and page.next_from is None and sequencer is not None:
            row = sequencer.current_row
            if row is not None and start <= int(row["start"]) < end:  # type: ignore[call-overload]
                candles.append(Candle.from_stream(key, row).to_proto())
        token = paging.next_page_token(request, page.next_from) if page.next_from is not None else ""
        return pb.GetCandlesResponse(candles=candles, next_page_token=token)

    async def StreamCandles(
        self, request: pb.StreamCandlesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamCandlesResponse]:
        require_reader(current_principal())
        key = await self._stream_key(request.category, request.symbol, request.interval)
        if self._bus is None:
            raise Unavailable("live candles need NATS, which this service is not connected to")
        caller = f"stream:{uuid.uuid4().hex}"
        live: asyncio.Queue[Msg] = asyncio.Queue()
        # Subscribe before replaying, so nothing published meanwhile falls between the two.
        subscription = await self._bus.client.subscribe(key.subject, cb=live.put)
        await self._demand.ensure(caller, {key}, STREAM_LEASE, store=False)
        self._streams.changed()
        renewed = time.monotonic()
        sent: int | None = None
        try:
            if request.HasField("since"):
                since = request.since.ToMilliseconds()
                page = await self._ranges.page(key, since, int(time.time() * 1000), REPLAY_LIMIT)
                for candle in page.candles:
                    sent = candle.start
                    yield pb.StreamCandlesResponse(candle=candle.to_proto(), replay=True)
            shown_row: object = None
            while True:
                try:
                    message = await asyncio.wait_for(live.get(), timeout=1.0)
                except TimeoutError:
                    message = None
                if time.monotonic() - renewed > STREAM_LEASE.total_seconds() / 3:
                    await self._demand.ensure(caller, {key}, STREAM_LEASE, store=False)
                    renewed = time.monotonic()
                if message is not None:
                    event = events_pb2.CandleClosed.FromString(message.data)
                    start = event.candle.start.ToMilliseconds()
                    if sent is None or start > sent:
                        sent = start
                        yield pb.StreamCandlesResponse(candle=event.candle, replay=False)
                if request.include_unconfirmed:
                    sequencer = self._streams.sequencers.get(key)
                    row = sequencer.current_row if sequencer is not None else None
                    if row is not None and row is not shown_row:
                        shown_row = row
                        yield pb.StreamCandlesResponse(candle=Candle.from_stream(key, row).to_proto())
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            await self._demand.release(caller)
            self._streams.changed()

    # tickers -------------------------------------------------------------------------------------
    async def GetTicker(
        self, request: pb.GetTickerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTickerResponse:
        require_reader(current_principal())
        category = category_name(request.category)
        if not request.symbol:
            raise InvalidArgument("set the instrument symbol, e.g. SOLUSDT", field="symbol")
        symbol = request.symbol.upper()
        await self._catalog.require(category, symbol, missing=NotFound)
        ticker = self._tickers.get(category, symbol)
        if ticker is None:
            row, time_ms = await self._market.ticker(category, symbol)
            ticker = ticker_from_bybit(category, row, time_ms)
        return pb.GetTickerResponse(ticker=ticker)

    # subscriptions -----------------------------------------------------------------------------
    async def EnsureSubscriptions(
        self, request: pb.EnsureSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EnsureSubscriptionsResponse:
        require_service(current_principal())
        return await self.ensure(request)

    async def ensure(self, request: pb.EnsureSubscriptionsRequest) -> pb.EnsureSubscriptionsResponse:
        """EnsureSubscriptions' work, shared with the NATS control subject."""
        if not request.caller_id:
            raise InvalidArgument("set caller_id, a stable id of the calling replica", field="caller_id")
        ttl = request.lease_ttl.ToTimedelta() if request.HasField("lease_ttl") else DEFAULT_TTL
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise InvalidArgument("lease_ttl must be between 30 seconds and 10 minutes", field="lease_ttl")
        keys: list[StreamKey] = []
        statuses: list[pb.SubscriptionStatus] = []
        for index, item in enumerate(request.subscriptions):
            key = StreamKey.from_proto(item.category, item.symbol, item.interval)
            status = pb.SubscriptionStatus(key=item)
            try:
                await self._catalog.require(key.category, key.symbol)
            except InvalidArgument as error:
                status.state = pb.SUBSCRIPTION_STATE_FAILED
                status.message = f"subscriptions[{index}]: {error.message}"
                statuses.append(status)
                continue
            keys.append(key)
            sequencer = self._streams.sequencers.get(key)
            status.state = STATES[sequencer.state] if sequencer is not None else pb.SUBSCRIPTION_STATE_PENDING
            if sequencer is not None and sequencer.last_published is not None:
                status.last_candle_start.CopyFrom(timestamp(sequencer.last_published))
            statuses.append(status)
        expires_at = await self._demand.ensure(request.caller_id, keys, ttl)
        self._streams.changed()
        response = pb.EnsureSubscriptionsResponse(subscriptions=statuses)
        response.lease_expire_time.FromDatetime(expires_at)
        return response

    async def ReleaseSubscriptions(
        self, request: pb.ReleaseSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseSubscriptionsResponse:
        require_service(current_principal())
        if not request.caller_id:
            raise InvalidArgument("set caller_id as given to EnsureSubscriptions", field="caller_id")
        released = await self._demand.release(request.caller_id)
        self._streams.changed()
        return pb.ReleaseSubscriptionsResponse(released_count=released)

    async def on_control(self, request: pb.EnsureSubscriptionsRequest, raw: Msg) -> None:
        """The NATS control subject: the same request as EnsureSubscriptions, from a platform service."""
        try:
            await self.ensure(request)
        except InvalidArgument as error:
            # A malformed request will not get better by redelivery; say so and drop it.
            log.warning("control request refused", extra={"caller": request.caller_id, "error": str(error)})
