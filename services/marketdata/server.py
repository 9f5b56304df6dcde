"""Market data service wiring: Bybit's public side — live candles into NATS, history, instruments.

Which Bybit it talks to (simulator, testnet, demo, mainnet) is chosen in one place, the shared
`BYBIT_ENV` setting (with `BYBIT_SIMULATOR_URL` for the simulator), through
`services.common.bybit.BybitVenue`; nothing in this package knows a host name.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from pydantic import Field
from tradebot.marketdata.v1 import marketdata_service_pb2 as pb
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as rpc

from services.common.db import make_engine, migrate
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings, SettingsError
from services.marketdata.demand import Demand
from services.marketdata.domain import StreamKey
from services.marketdata.exchange import BybitMarket
from services.marketdata.feed import MarketFeed
from services.marketdata.gaps import StreamSequencer
from services.marketdata.history import Backfill, HistoryWriter
from services.marketdata.instruments import InstrumentCatalog
from services.marketdata.liveness import Liveness
from services.marketdata.metrics import FeedMetrics
from services.marketdata.publisher import CandlePublisher
from services.marketdata.ranges import CandleRanges
from services.marketdata.servicer import MarketDataServicer
from services.marketdata.store import Store
from services.marketdata.streams import CandleStreams
from services.marketdata.tickers import TickerBook

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Platform services may send EnsureSubscriptionsRequest here instead of calling the RPC.
CONTROL_SUBJECT = "md.control.subscriptions"


class Settings(ServiceSettings):
    marketdata_db_schema: str = Field("marketdata", description="PostgreSQL schema of this service's tables")
    backfill_candles: int = Field(
        1000, ge=1, le=200_000, description="Candles of history fetched when a stream is first subscribed"
    )
    feed_stale_seconds: float = Field(
        60.0, gt=0, le=3600, description="Longest silence allowed on any stream (shorter for short intervals)"
    )
    instruments_refresh_seconds: float = Field(
        300.0, gt=0, description="How long the instrument list is cached"
    )
    ticker_publish_seconds: float = Field(1.0, gt=0, description="Tickers are published at most this often")
    control_durable: str = Field(
        "marketdata-control", description="Durable consumer name of the subscription control subject"
    )


async def setup(runtime: ServiceRuntime) -> None:
    settings: Settings = runtime.settings
    if not settings.database_url or runtime.bus is None:
        raise SettingsError("marketdata needs DATABASE_URL and NATS_URL")  # fail fast, not at first candle
    bus = runtime.bus
    venue = settings.bybit_venue()
    metrics = FeedMetrics()
    market = BybitMarket(venue)
    catalog = InstrumentCatalog(market, settings.instruments_refresh_seconds)

    schema = settings.marketdata_db_schema
    await asyncio.to_thread(migrate, MIGRATIONS, settings.database_url, schema)
    engine = make_engine(settings.database_url, schema)
    store = Store(engine)
    history = HistoryWriter(store)
    backfill = Backfill(market, store, metrics, settings.backfill_candles)
    demand = Demand(store)
    await demand.load()

    streams: CandleStreams
    publisher = CandlePublisher(
        bus,
        metrics,
        on_acked=history.published,
        on_failed=lambda candle: streams.publish_failed(candle),  # noqa: PLW0108 (bound later)
    )
    tickers = TickerBook(publisher, settings.ticker_publish_seconds)

    def make_sequencer(key: StreamKey) -> StreamSequencer:
        return StreamSequencer(
            key,
            market=market,
            history=history,
            backfill=backfill,
            publish=publisher.publish,
            last_published=publisher.last_published_start,
            metrics=metrics,
        )

    streams = CandleStreams(demand, tickers, make_sequencer)
    feed = MarketFeed(venue, metrics, streams.reconnected)
    streams.feed = feed
    liveness = Liveness(streams, feed, runtime.set_serving, metrics, settings.feed_stale_seconds)
    servicer = MarketDataServicer(
        catalog=catalog,
        store=store,
        ranges=CandleRanges(store, market),
        market=market,
        demand=demand,
        streams=streams,
        tickers=tickers,
        bus=bus,
    )
    runtime.add_servicer(rpc.add_MarketDataServiceServicer_to_server, servicer)
    bus.consume(
        "MARKETDATA",
        settings.control_durable,
        CONTROL_SUBJECT,
        pb.EnsureSubscriptionsRequest,
        servicer.on_control,
    )

    history.start()
    tasks = [
        asyncio.create_task(feed.run(streams.ingest), name="feed"),
        asyncio.create_task(streams.reconcile_forever(), name="reconcile"),
        asyncio.create_task(liveness.run(), name="liveness"),
        asyncio.create_task(tickers.run(), name="tickers"),
    ]
    streams.changed()  # open the streams of leases that survived a restart

    async def stop() -> None:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await streams.stop()
        await feed.close()
        await publisher.settle(5.0)
        await publisher.close()
        await history.stop()
        engine.dispose()

    runtime.on_stop(stop)
