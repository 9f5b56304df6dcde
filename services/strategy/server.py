"""Strategy service wiring: bots and their lifecycle, candle-driven evaluation, signals and backtests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from pydantic import Field
from tradebot.execution.v1 import events_pb2 as exec_events
from tradebot.marketdata.v1 import events_pb2 as md_events
from tradebot.strategy.v1 import strategy_service_pb2_grpc as rpc

from services.common.db import make_engine, migrate
from services.common.errors import Unavailable
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings, SettingsError
from services.strategy.backtests import Backtests
from services.strategy.bots import Bots
from services.strategy.engine import Engine, LiveBot, Subscriptions
from services.strategy.feed import PushedFeed
from services.strategy.journal import Journal
from services.strategy.market import MarketData
from services.strategy.models import BotRow
from services.strategy.peers import Peers
from services.strategy.servicer import StrategyServicer
from services.strategy.signals import BotRef, SignalPublisher, SignalStore
from services.strategy.store import BotStore

log = logging.getLogger("tradebot.strategy")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Settings(ServiceSettings):
    strategy_db_schema: str = Field("strategy", description="PostgreSQL schema of this service's tables")
    marketdata_addr: str = Field("", description="host:port of the marketdata service")
    execution_addr: str = Field(
        "", description="host:port of execution: kill switches before a start, positions a stop closes"
    )
    strategy_candle_durable: str = Field(
        "strategy-candles", description="Durable consumer name of md.candle.>"
    )
    strategy_position_durable: str = Field(
        "strategy-positions", description="Durable consumer name of execution's position events"
    )
    strategy_risk_durable: str = Field(
        "strategy-risk",
        description="Durable consumer name of execution's risk events (entries it skipped or had rejected)",
    )
    strategy_subscriber_id: str = Field(
        "strategy-0", description="Caller id of this replica's subscription lease with marketdata"
    )


def supervise(start: Callable[[], asyncio.Task[None]], stopping: asyncio.Event) -> None:
    """Run a consumer and start it again if its loop ever ends with an error (a fetch can fail in ways
    the shared loop does not retry); the durable consumer resumes where it stopped."""

    def ended(task: asyncio.Task[None]) -> None:
        if task.cancelled() or stopping.is_set():
            return
        log.warning("consumer ended; restarting it", exc_info=task.exception())

        def again() -> None:
            if not stopping.is_set():
                supervise(start, stopping)

        # After a pause, so a consumer that cannot start (NATS away) does not spin.
        asyncio.get_running_loop().call_later(1.0, again)

    start().add_done_callback(ended)


def live_bot(row: BotRow) -> LiveBot:
    ref = BotRef(row.id, row.tenant_id, row.strategy_id, row.category, row.symbol, row.interval, row.mode)
    return LiveBot(ref, dict(row.parameters), Decimal(row.capital_allocation), row.status, row.active_from_ms)


async def setup(runtime: ServiceRuntime) -> None:
    settings: Settings = runtime.settings
    bus = runtime.bus
    if not settings.database_url or bus is None:
        raise SettingsError("strategy needs DATABASE_URL and NATS_URL")  # fail fast, not at first candle
    schema = settings.strategy_db_schema
    await asyncio.to_thread(migrate, MIGRATIONS, settings.database_url, schema)
    db = make_engine(settings.database_url, schema, pool_size=10)
    credentials = runtime.credentials
    market = MarketData(settings.marketdata_addr, credentials.metadata if credentials else None)
    store = BotStore(db)
    subscriptions = Subscriptions(market, settings.strategy_subscriber_id)
    journal = Journal(db)
    journal.start()
    engine = Engine(market, SignalPublisher(bus), journal, subscriptions)

    async def refresh() -> None:
        rows = await asyncio.to_thread(store.active)
        engine.set_bots([live_bot(r) for r in rows])
        with contextlib.suppress(Exception):  # marketdata may be down; the renewal loop retries
            await subscriptions.renew()

    checks = Peers(
        settings.tenants_addr, settings.execution_addr, credentials.metadata if credentials else None
    )

    async def close_position(row: BotRow, why: str) -> object:
        # Execution's position is the exchange's; the bank's belief can differ (0055). A stop does not
        # wait for execution to come back: without its answer the bank's belief decides.
        held, asked = None, checks.knows_positions
        if asked:
            try:
                held = await checks.position(row)
            except Unavailable:
                log.warning("stop: execution not reachable; the engine's view decides", extra={"bot": row.id})
                asked = False
        return await engine.close_position(row, why, held, from_exchange=asked)

    bots = Bots(store, market, bus, refresh, checks, close_position)
    servicer = StrategyServicer(bots, SignalStore(db), Backtests(db, market))
    runtime.add_servicer(rpc.add_StrategyServiceServicer_to_server, servicer)
    await refresh()
    stopping = asyncio.Event()
    feed = PushedFeed(bus)
    await feed.start(
        "MARKETDATA",
        settings.strategy_candle_durable,
        "md.candle.>",
        md_events.CandleClosed,
        engine.on_candles,
    )
    supervise(
        lambda: bus.consume(
            "EXECUTION",
            settings.strategy_position_durable,
            "exec.position.>",
            exec_events.PositionEvent,
            engine.on_position,
        ),
        stopping,
    )
    supervise(
        lambda: bus.consume(
            "EXECUTION",
            settings.strategy_risk_durable,
            "exec.risk.>",
            exec_events.RiskEvent,
            engine.on_risk,
        ),
        stopping,
    )
    renewal = asyncio.create_task(subscriptions.run(30.0), name="subscriptions")

    async def stop() -> None:
        stopping.set()
        await feed.stop()
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
        await engine.stop()
        await journal.stop()
        await market.close()
        await checks.close()
        db.dispose()

    runtime.on_stop(stop)
