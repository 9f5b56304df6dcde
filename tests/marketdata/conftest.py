"""Fixtures: a fresh simulator per test (paused: tests drive the market clock) with its own symbol, and
the servicer in-process against it with real PostgreSQL and NATS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.common import bus as bus_module
from services.common.bybit import BybitEnv, BybitVenue
from services.common.context import Principal, Role, bind_principal
from services.common.db import make_engine, migrate
from services.exchangesim.app import Simulator
from services.marketdata.demand import Demand
from services.marketdata.exchange import BybitMarket
from services.marketdata.instruments import InstrumentCatalog
from services.marketdata.metrics import FeedMetrics
from services.marketdata.publisher import CandlePublisher
from services.marketdata.ranges import CandleRanges
from services.marketdata.server import MIGRATIONS
from services.marketdata.servicer import MarketDataServicer
from services.marketdata.store import Store
from services.marketdata.streams import CandleStreams
from services.marketdata.tickers import TickerBook
from tests.helpers.infra import Infra
from tests.marketdata.helpers import start_sim, unique_symbol


@pytest.fixture
def symbol() -> str:
    return unique_symbol()


@pytest.fixture
async def sim(symbol: str) -> AsyncIterator[Simulator]:
    simulator = await start_sim(symbol)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def servicer(infra: Infra, sim: Simulator) -> AsyncIterator[MarketDataServicer]:
    schema = f"md_{uuid.uuid4().hex[:10]}"
    migrate(MIGRATIONS, infra.postgres.url, schema)
    engine = make_engine(infra.postgres.url, schema)
    bus = await bus_module.connect(infra.nats.url, "test")
    store = Store(engine)
    market = BybitMarket(BybitVenue(BybitEnv.SIMULATOR, sim.http_url))
    demand = Demand(store)
    publisher = CandlePublisher(bus, FeedMetrics(), on_acked=lambda c: None, on_failed=lambda c: None)
    tickers = TickerBook(publisher, 1.0)
    yield MarketDataServicer(
        catalog=InstrumentCatalog(market, 300),
        store=store,
        ranges=CandleRanges(store, market),
        market=market,
        demand=demand,
        streams=CandleStreams(demand, tickers, make_sequencer=None),
        tickers=tickers,
        bus=bus,
    )
    await bus.drain()
    engine.dispose()


@pytest.fixture(autouse=True)
def viewer() -> None:
    bind_principal(Principal(user_id="user-1", tenant_id="tenant-a", role=Role.VIEWER))
