"""The execution service against the simulator, real NATS, PostgreSQL and OpenBao: in-process for most
tests, as a real process for kill-and-restart; signals, bots and keys as other services would send
them; the simulator's admin API as ground truth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import hvac
from google.protobuf.timestamp_pb2 import Timestamp
from sqlmodel import select
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import events_pb2 as sig

from services.common import bus as bus_module
from services.common.context import Principal, Role, bind_principal
from services.common.vault import SecretStore
from services.devstack.platform import REPO
from services.exchangesim.accounts import ApiKey
from services.exchangesim.app import SimConfig, Simulator
from services.execution import models
from services.execution.credentials import secret_path
from services.execution.paper import paper_secret_path
from services.execution.server import Execution, Settings, build
from tests.helpers.infra import Infra

LINEAR = common.CATEGORY_LINEAR


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def unique_symbol() -> str:
    return f"X{uuid.uuid4().hex[:8].upper()}USDT"


async def start_sim(symbol: str, **config: Any) -> Simulator:
    """A paused simulator with one random-walk instrument around 100 (tests drive the clock)."""
    sim = Simulator(
        SimConfig(port=0, paused=True, data_files=(), random_walk={symbol: Decimal("100")}, seed=7, **config)
    )
    await sim.start()
    return sim


async def eventually(check: Callable[[], object], within: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def store_keys(infra: Infra, tenant_id: str, key: ApiKey) -> int:
    """What the tenants service does: keys into Vault KV v2 (with the root token in tests)."""
    store = SecretStore(hvac.Client(url=infra.vault.addr, token=infra.vault.root_token))
    return store.put(secret_path(tenant_id), {"api_key": key.key, "api_secret": key.secret})


def settings_env(infra: Infra, sim_url: str, schema: str, **overrides: str) -> dict[str, str]:
    return {
        "DATABASE_URL": infra.postgres.url,
        "NATS_URL": infra.nats.url,
        "VAULT_ADDR": infra.vault.addr,
        "VAULT_TOKEN": infra.vault.service_tokens["execution"],
        "BYBIT_ENV": "simulator",
        "BYBIT_SIMULATOR_URL": sim_url,
        "EXECUTION_DB_SCHEMA": schema,
        "EXECUTION_SIGNAL_DURABLE": f"exec-{schema}",
        "EXECUTION_ORDER_TIMEOUT_SECONDS": "1.5",
        "EXECUTION_ORDER_DEADLINE_SECONDS": "8",
        # Short, so state converges even when pybit drops a stream message (its subscription reply
        # race against a fast local simulator makes it reconnect now and then).
        "EXECUTION_RECONCILE_INTERVAL_SECONDS": "2",
        **overrides,
    }


def settings_of(env: dict[str, str]) -> Settings:
    values: dict[str, Any] = {k.lower(): v for k, v in env.items()}
    return Settings(**values)


@dataclass
class Harness:
    """The service's parts in this process, with its own schema and durable consumer names."""

    infra: Infra
    sim: Simulator
    execution: Execution
    bus: bus_module.Bus

    async def stop(self) -> None:
        # Bounded: a pybit stream thread that never finishes connecting must not hang the session.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop(), 30)

    async def _stop(self) -> None:
        await self.bus.stop_consuming()
        await self.execution.stop()
        await self.bus.drain()

    async def rows(self, model: type[Any], **where: Any) -> list[Any]:
        def query(session: Any) -> list[Any]:
            q = select(model)
            for name, value in where.items():
                q = q.where(getattr(model, name) == value)
            return list(session.exec(q).all())

        return await self.execution.store.run(query)


async def start_harness(infra: Infra, sim: Simulator, *, consume: bool = True, **overrides: str) -> Harness:
    schema = unique("ex_")
    settings = settings_of(settings_env(infra, sim.http_url, schema, **overrides))
    bus = await bus_module.connect(infra.nats.url, "execution-test")
    execution = await build(settings, bus)
    await execution.start(bus if consume else None)
    return Harness(infra, sim, execution, bus)


@dataclass
class Tenant:
    tenant_id: str
    bot_id: str
    key: ApiKey
    symbol: str


async def new_tenant(
    harness: Harness,
    symbol: str,
    *,
    balance: str = "10000",
    capital: str = "1000",
    risk_per_trade: float = 0.01,
) -> Tenant:
    tenant = Tenant(unique("t-"), unique("b-"), harness.sim.create_account({"USDT": balance}), symbol)
    await asyncio.to_thread(store_keys, harness.infra, tenant.tenant_id, tenant.key)
    await harness.execution.tenant_events.on_bot(
        bot_event(tenant, capital=capital, risk_per_trade=risk_per_trade)
    )
    await eventually(lambda: _reconciled(harness, tenant.tenant_id), 20, "first reconciliation")
    return tenant


async def _reconciled(harness: Harness, tenant_id: str) -> bool:
    state = harness.execution.accounts.tenants.get(tenant_id)
    return bool(state and state.reconciled)


def bot_event(
    tenant: Tenant,
    *,
    capital: str,
    risk_per_trade: float,
    leverage: float = 5.0,
    mode: int = common.TRADING_MODE_LIVE,
) -> sig.BotLifecycleEvent:
    bot = sig.Bot(
        id=tenant.bot_id,
        tenant_id=tenant.tenant_id,
        strategy_id="ppp_vishva",
        category=LINEAR,
        symbol=tenant.symbol,
        interval=common.INTERVAL_1_HOUR,
        mode=mode,
        capital_allocation=capital,
        status=sig.BOT_STATUS_RUNNING,
    )
    bot.parameters["risk_per_trade"].float_value = risk_per_trade
    bot.parameters["leverage"].float_value = leverage
    return sig.BotLifecycleEvent(event_id=str(uuid.uuid4()), bot=bot)


def price(sim: Simulator, symbol: str) -> Decimal:
    return Decimal(str(sim.venue.market.price(symbol)))


def make_signal(
    tenant: Tenant,
    action: int,
    side: int,
    *,
    reference: Decimal,
    stop: Decimal | None = None,
    take: Decimal | None = None,
    signal_id: str | None = None,
    mode: int = common.TRADING_MODE_LIVE,
) -> sig.Signal:
    created = Timestamp()
    created.GetCurrentTime()
    return sig.Signal(
        id=signal_id or unique("s"),
        bot_id=tenant.bot_id,
        tenant_id=tenant.tenant_id,
        strategy_id="ppp_vishva",
        category=LINEAR,
        symbol=tenant.symbol,
        interval=common.INTERVAL_1_HOUR,
        action=action,
        side=side,
        reference_price=str(reference),
        stop_loss=str(stop) if stop is not None else "",
        take_profit=str(take) if take is not None else "",
        mode=mode,
        create_time=created,
    )


def entry(sim: Simulator, tenant: Tenant, side: int = common.SIDE_BUY, **kw: Any) -> sig.Signal:
    ref = price(sim, tenant.symbol)
    long = side == common.SIDE_BUY
    stop = ref * (Decimal("0.98") if long else Decimal("1.02"))
    take = ref * (Decimal("1.04") if long else Decimal("0.96"))
    return make_signal(
        tenant,
        sig.SIGNAL_ACTION_ENTRY,
        side,
        reference=ref,
        stop=stop.quantize(Decimal("0.01")),
        take=take.quantize(Decimal("0.01")),
        **kw,
    )


def exit_signal(sim: Simulator, tenant: Tenant, side: int = common.SIDE_SELL, **kw: Any) -> sig.Signal:
    return make_signal(tenant, sig.SIGNAL_ACTION_EXIT, side, reference=price(sim, tenant.symbol), **kw)


async def publish(harness_bus: bus_module.Bus, signal: sig.Signal) -> None:
    await harness_bus.publish(f"sig.{signal.tenant_id}.{signal.bot_id}", signal, signal.id)


async def outcome(
    harness: Harness, tenant: Tenant, signal_id: str, within: float = 20.0
) -> models.SignalOutcome:
    async def find() -> models.SignalOutcome | None:
        rows = await harness.rows(models.SignalOutcome, tenant_id=tenant.tenant_id, signal_id=signal_id)
        return rows[0] if rows else None

    result: models.SignalOutcome = await eventually(find, within, f"outcome of {signal_id}")
    return result


async def admin(sim: Simulator, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{sim.http_url}/admin/{path}") as reply:
        return await reply.json()


async def sim_orders(sim: Simulator, tenant: Tenant) -> list[dict[str, Any]]:
    return list((await admin(sim, f"accounts/{tenant.key.uid}/orders"))["orders"])


async def sim_fills(sim: Simulator, tenant: Tenant) -> list[dict[str, Any]]:
    return list((await admin(sim, f"accounts/{tenant.key.uid}/fills"))["fills"])


async def fault(sim: Simulator, **rule: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.http_url}/admin/faults", json=rule) as reply,
    ):
        assert reply.status == 200, await reply.text()


async def clear_faults(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session, session.delete(f"{sim.http_url}/admin/faults") as reply:
        assert reply.status == 200


def as_caller(tenant_id: str, role: Role = Role.OWNER, user_id: str = "user-1") -> None:
    bind_principal(
        Principal(user_id=user_id, tenant_id=tenant_id, role=role, scopes=frozenset({"read", "trade"}))
    )


@dataclass
class ExecutionProcess:
    """`python -m services.execution` with its own schema, as the platform runs it (for kill tests)."""

    env: dict[str, str]
    logs: Path
    proc: subprocess.Popen[bytes] | None = None
    name: str = field(default_factory=lambda: unique("exec-"))

    @property
    def ready_file(self) -> Path:
        return self.logs / f"{self.name}.ready.json"

    async def start(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        log = (self.logs / f"{self.name}.log").open("ab")
        env = {
            **os.environ,
            **self.env,
            "GRPC_PORT": "0",
            "METRICS_PORT": "0",
            "READY_FILE": str(self.ready_file),
        }
        self.proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the wait below is async)
            [sys.executable, "-m", "services.execution"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        proc = self.proc
        await eventually(lambda: self.ready_file.exists() or proc.poll() is not None, 60, "ready file")
        assert proc.poll() is None, self.log_tail()

    def log_tail(self) -> str:
        return (self.logs / f"{self.name}.log").read_text()[-4000:]

    @property
    def grpc_port(self) -> int:
        return int(json.loads(self.ready_file.read_text())["grpc_port"])

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown (crash-only)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def paper_key(infra: Infra, tenant_id: str) -> dict[str, Any] | None:
    return SecretStore(hvac.Client(url=infra.vault.addr, token=infra.vault.root_token)).read(
        paper_secret_path(tenant_id)
    )


async def paper_bot(harness: Harness, tenant_id: str, symbol: str) -> Tenant:
    """A PAPER bot of the tenant; its account is opened on the simulator when the bot appears."""
    bot = Tenant(tenant_id, unique("b-"), None, symbol)  # type: ignore[arg-type]  # no client keys
    await harness.execution.tenant_events.on_bot(
        bot_event(bot, capital="1000", risk_per_trade=0.01, mode=common.TRADING_MODE_PAPER)
    )
    return bot


def paper_uid(harness: Harness, sim: Simulator, tenant_id: str) -> int:
    key = paper_key(harness.infra, tenant_id)
    assert key is not None, "no paper key stored in Vault"
    return sim.venue.accounts.keys[str(key["api_key"])].uid


def sim_size(sim: Simulator, uid: int, symbol: str) -> Decimal:
    position = sim.venue.accounts.by_uid[uid].positions.get(symbol)
    return abs(position.size) if position is not None else Decimal(0)


async def stored_size(harness: Harness, tenant_id: str, mode: str) -> Decimal:
    rows = await harness.rows(models.Position, tenant_id=tenant_id, mode=mode)
    return rows[0].size if rows else Decimal(0)


async def open_position(harness: Harness, sim: Simulator, bot: Tenant, mode: int) -> None:
    signal = entry(sim, bot, mode=mode)
    await publish(harness.bus, signal)
    done = await outcome(harness, bot, signal.id)
    assert done.outcome == "ORDERED", done.reason
    name = common.TradingMode.Name(mode).removeprefix("TRADING_MODE_")
    await eventually(lambda: stored_size(harness, bot.tenant_id, name), 15, f"{name} position stored")


async def resting_order(
    harness: Harness, sim: Simulator, client: Any, tenant_id: str, uid: int, mode: str, symbol: str
) -> str:
    """A resting limit buy of the platform's (its orderLinkId prefix) far below the market, for the
    size of the account's position, once the service has stored it as open and not external."""
    link = f"tb-rest-{uuid.uuid4().hex[:12]}"
    await client.call(
        "place_order",
        category="linear",
        symbol=symbol,
        side="Buy",
        orderType="Limit",
        qty=str(sim_size(sim, uid, symbol)),
        price=str((price(sim, symbol) / 2).quantize(Decimal("0.01"))),
        timeInForce="GTC",
        orderLinkId=link,
        positionIdx=0,
    )

    async def stored() -> bool:
        rows = await harness.rows(models.Order, tenant_id=tenant_id, mode=mode, order_link_id=link)
        return bool(rows) and rows[0].status == "New" and not rows[0].external

    await eventually(stored, 20, "resting order stored as the platform's")
    return link
