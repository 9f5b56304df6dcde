"""Execution service wiring: risk checks, orders, fills, positions and PnL; the only service that trades.

Which Bybit LIVE bots trade on is the shared `BYBIT_ENV` setting (`services.common.bybit.BybitVenue`);
PAPER bots trade on accounts execution opens on the simulator at `BYBIT_SIMULATOR_URL` (paper.py). The
service starts and answers RPCs without an exchange: reconciliation runs per tenant in the
background and gates only that tenant's orders.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import Field
from tradebot.execution.v1 import execution_service_pb2_grpc as rpc
from tradebot.strategy.v1 import events_pb2 as strategy_events
from tradebot.tenants.v1 import events_pb2 as tenant_events

from services.common.bus import Bus
from services.common.bybit import BybitEnv, BybitVenue
from services.common.db import make_engine, migrate
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings, SettingsError
from services.common.vault import SecretStore, vault_client
from services.execution import risk
from services.execution.account_book import Changes
from services.execution.account_stream import StreamWorkers
from services.execution.accounts import Accounts
from services.execution.brackets import Brackets
from services.execution.budget import RequestBudget
from services.execution.credentials import CredentialCache
from services.execution.events import Events
from services.execution.exchange import Exchange
from services.execution.instruments import InstrumentCache
from services.execution.intake import SignalIntake
from services.execution.metrics import ExecutionMetrics
from services.execution.orders import OrderPlacer
from services.execution.paper import PaperAccounts, paper_secret_path
from services.execution.reconcile import Reconciler
from services.execution.rpc_base import Deps
from services.execution.servicer import ExecutionServicer
from services.execution.stepup import StepUp, tenants_step_up
from services.execution.store import Store
from services.execution.tenant_events import TenantEvents

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Settings(ServiceSettings):
    execution_db_schema: str = Field("execution", description="PostgreSQL schema of this service's tables")
    execution_signal_durable: str = Field(
        "execution", description="Durable consumer name of the signal intake"
    )
    execution_signal_subject: str = Field("sig.>", description="Signals consumed (sig.<tenant>.<bot>)")
    execution_signal_ack_wait_seconds: float = Field(
        30.0, gt=0, le=3600, description="A signal not acknowledged within this time is delivered again"
    )
    execution_concurrency: int = Field(
        1024, ge=1, le=10_000, description="Signals handled at once (different tenants; one tenant in order)"
    )
    execution_exchange_threads: int = Field(
        256, ge=1, le=4096, description="Threads for pybit's synchronous calls (all tenants share them)"
    )
    execution_db_threads: int = Field(
        32, ge=1, le=512, description="Threads (and connections) for the database"
    )
    execution_order_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="HTTP timeout of one exchange call; past it the outcome is unknown"
    )
    execution_order_deadline_seconds: float = Field(
        20.0, gt=0, le=600, description="How long one attempt at a signal keeps resolving its order"
    )
    execution_unknown_bot_retries: int = Field(
        30,
        ge=0,
        le=1000,
        description="Deliveries of a signal whose bot is not known yet (just started) before it is skipped",
    )
    execution_unknown_bot_delay_seconds: float = Field(
        1.0, gt=0, le=60, description="Wait before such a signal is delivered again"
    )
    execution_max_signal_age_seconds: float = Field(
        300.0, gt=0, description="Older signals are skipped as stale (the market has moved on)"
    )
    execution_ip_requests: int = Field(
        550,
        ge=1,
        description="Requests per IP window, all tenants together (Bybit: 600 per 5 s; keep headroom)",
    )
    execution_ip_window_seconds: float = Field(5.0, gt=0, description="The per-IP window")
    execution_credentials_ttl_seconds: float = Field(
        60.0, gt=0, description="How long exchange keys are cached in memory"
    )
    execution_reconcile_interval_seconds: float = Field(
        60.0, gt=0, description="Periodic reconciliation of every active account"
    )
    execution_account_streams: bool = Field(True, description="Run each active tenant's private WebSocket")
    execution_breaker_errors: int = Field(5, ge=1, description="Exchange errors that trip a tenant's breaker")
    execution_breaker_window_seconds: float = Field(
        60.0, gt=0, description="Window the errors are counted in"
    )
    execution_breaker_cooldown_seconds: float = Field(
        60.0, gt=0, description="How long a tripped breaker pauses"
    )
    execution_cap_max_position_notional: Decimal = Field(
        Decimal("1000000"), gt=0, description="Platform cap: largest position notional (quote coin)"
    )
    execution_cap_max_open_positions: int = Field(
        50, ge=1, description="Platform cap: open positions per tenant"
    )
    execution_cap_max_leverage: Decimal = Field(Decimal("10"), gt=0, description="Platform cap: leverage")
    execution_cap_daily_loss_limit: Decimal = Field(
        Decimal("1000000"), gt=0, description="Platform cap: daily loss (quote coin)"
    )
    execution_cap_max_orders_per_minute: int = Field(60, ge=1, description="Platform cap: orders per minute")
    execution_paper_balance_usdt: Decimal = Field(
        Decimal("10000"), gt=0, description="Starting USDT balance of a tenant's paper account (simulator)"
    )
    execution_paper_admin_token: str = Field(
        "",
        description="X-Admin-Token of the simulator's admin API if it needs one (opens paper accounts)",
    )

    def caps(self) -> risk.Limits:
        return risk.Limits(
            max_position_notional=self.execution_cap_max_position_notional,
            max_open_positions=self.execution_cap_max_open_positions,
            max_leverage=self.execution_cap_max_leverage,
            daily_loss_limit=self.execution_cap_daily_loss_limit,
            max_orders_per_minute=self.execution_cap_max_orders_per_minute,
        )


@dataclass
class Execution:
    """The service's parts, wired; `setup` serves them, tests drive them in-process."""

    settings: Settings
    store: Store
    exchange: Exchange
    accounts: Accounts
    paper: Accounts
    workers: StreamWorkers
    intake: SignalIntake
    tenant_events: TenantEvents
    servicer: ExecutionServicer
    brackets: Brackets | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, bus: Bus | None) -> None:
        settings = self.settings
        self.workers.start()
        for accounts in (self.accounts, self.paper):
            await accounts.start()
            self.tasks.append(
                asyncio.create_task(accounts.reconcile_forever(settings.execution_reconcile_interval_seconds))
            )
        if bus is None:
            return
        durable = settings.execution_signal_durable
        bus.consume(
            "BOTS",
            f"{durable}-bots",
            "bot.lifecycle.>",
            strategy_events.BotLifecycleEvent,
            self.tenant_events.on_bot,
        )
        bus.consume(
            "TENANTS",
            f"{durable}-credentials",
            "tenant.credentials.>",
            tenant_events.ExchangeCredentialsChanged,
            self.tenant_events.on_credentials,
        )
        # One of the bus's consumers, so shutdown stops it (letting running signals finish) before
        # NATS is drained.
        self.intake.consume(
            bus,
            durable,
            settings.execution_signal_subject,
            ack_wait=settings.execution_signal_ack_wait_seconds,
            concurrency=settings.execution_concurrency,
        )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            # A pull subscription cancelled mid-fetch may end in nats' own timeout instead.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(self.accounts.stop(), self.paper.stop()), 15.0)
        await self.workers.stop()
        if self.brackets is not None:
            await self.brackets.stop()
        self.exchange.close()
        self.store.close()


async def build(settings: Settings, bus: Bus | None, stepup: StepUp | None = None) -> Execution:
    if not settings.database_url:
        raise SettingsError("execution needs DATABASE_URL")  # fail fast, not at the first signal
    schema = settings.execution_db_schema
    await asyncio.to_thread(migrate, MIGRATIONS, settings.database_url, schema)
    store = Store(
        make_engine(settings.database_url, schema, pool_size=settings.execution_db_threads),
        settings.execution_db_threads,
    )
    venue = settings.bybit_venue()
    exchange = Exchange(
        venue,
        RequestBudget(settings.execution_ip_requests, settings.execution_ip_window_seconds),
        settings.execution_exchange_threads,
        settings.execution_order_timeout_seconds,
    )
    events = Events(bus)
    secrets = (lambda: SecretStore(vault_client(settings))) if settings.vault_addr else None
    credentials = CredentialCache(secrets, settings.execution_credentials_ttl_seconds)
    instruments = InstrumentCache(exchange, 300.0)
    brackets = Brackets(store, instruments, events)

    async def publish(changes: Changes) -> None:
        await events.changes(changes)
        brackets.notice(changes)  # an entry that has just filled gets its fill-based stop and target

    workers = StreamWorkers(store, publish)
    reconciler = Reconciler(
        store, settings.execution_order_deadline_seconds + settings.execution_order_timeout_seconds + 5
    )
    accounts = Accounts(
        venue=venue,
        exchange=exchange,
        credentials=credentials,
        store=store,
        reconciler=reconciler,
        workers=workers,
        events=events,
        streams_enabled=settings.execution_account_streams,
    )
    paper_venue = BybitVenue(BybitEnv.SIMULATOR, settings.bybit_simulator_url)
    opener = PaperAccounts(
        settings.bybit_simulator_url,
        settings.execution_paper_admin_token,
        settings.execution_paper_balance_usdt,
        settings.execution_order_timeout_seconds,
    )
    paper = Accounts(
        venue=paper_venue,
        exchange=Exchange(
            paper_venue,
            RequestBudget(settings.execution_ip_requests, settings.execution_ip_window_seconds),
            settings.execution_exchange_threads,
            settings.execution_order_timeout_seconds,
            pool=exchange.pool,
        ),
        credentials=CredentialCache(
            secrets,
            settings.execution_credentials_ttl_seconds,
            path=paper_secret_path,
            provision=opener.provision,
        ),
        store=store,
        reconciler=reconciler,
        workers=workers,
        events=events,
        streams_enabled=settings.execution_account_streams,
        mode="PAPER",
    )
    breaker = risk.CircuitBreaker(
        settings.execution_breaker_errors,
        settings.execution_breaker_window_seconds,
        settings.execution_breaker_cooldown_seconds,
    )
    placer = OrderPlacer(breaker, settings.execution_order_deadline_seconds)
    brackets.accounts = {"LIVE": accounts, "PAPER": paper}
    accounts.brackets = paper.brackets = brackets
    caps = settings.caps()
    intake = SignalIntake(
        store=store,
        accounts=accounts,
        paper=paper,
        placer=placer,
        instruments=instruments,
        events=events,
        caps=caps,
        breaker=breaker,
        rate=risk.OrderRate(),
        max_signal_age=settings.execution_max_signal_age_seconds,
        unknown_bot_retries=settings.execution_unknown_bot_retries,
        unknown_bot_delay=settings.execution_unknown_bot_delay_seconds,
    )
    ExecutionMetrics(intake, placer, reconciler, exchange.budget, workers)
    deps = Deps(store, accounts, placer, instruments, events, caps, stepup or StepUp(), paper)
    accounts.flattener = paper.flattener = deps.flattener
    return Execution(
        settings=settings,
        store=store,
        exchange=exchange,
        accounts=accounts,
        paper=paper,
        workers=workers,
        intake=intake,
        tenant_events=TenantEvents(store, accounts, paper),
        servicer=ExecutionServicer(deps),
        brackets=brackets,
    )


async def setup(runtime: ServiceRuntime) -> None:
    settings: Settings = runtime.settings
    stepup = None
    if settings.tenants_addr and runtime.credentials is not None:
        stepup = tenants_step_up(settings.tenants_addr, runtime.credentials)
    execution = await build(settings, runtime.bus, stepup)
    runtime.add_servicer(rpc.add_ExecutionServiceServicer_to_server, execution.servicer)
    await execution.start(runtime.bus)
    runtime.on_stop(execution.stop)
