"""Data rights across the platform: ExportTenantData and DeleteTenant reach strategy and execution.

A slice of the real platform (the Bybit simulator, tenants, marketdata, strategy and execution as
processes on the session's PostgreSQL, NATS and OpenBao). Tenant A stores an exchange key, runs a
live bot until its signals became orders and fills, runs a backtest and sets risk limits; tenant B
has its own key and bot. A's export holds all of that and nothing secret or of B's; after A is
deleted no row of A remains in any schema (the audit trail and the tenant's deletion marker aside),
A's Vault secret is destroyed, A's bot emits nothing more, B is untouched and A's audit chain still
verifies. While execution is down a deletion is refused and nothing of tenants' is removed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import hvac
import nats
import pytest
from sqlalchemy import create_engine, text
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.strategy.v1 import strategy_service_pb2 as st
from tradebot.strategy.v1 import strategy_service_pb2_grpc as st_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.common.db import sqlalchemy_url
from services.devstack.platform import ServiceProcess
from services.devstack.simulator import EmbeddedSimulator
from tests.helpers.bots import create_bot
from tests.helpers.clients import PASSWORD, Person, new_client, open_account, store_keys
from tests.helpers.infra import Infra
from tests.helpers.slices import plan_slice, sign_up_admin
from tests.helpers.tokens import service_token
from tests.helpers.waiting import eventually, wait_serving

GRPC = ("tenants", "marketdata", "strategy", "execution")
WAIT_SECONDS = 180.0
FAST_SECONDS_PER_CANDLE = 0.15


@dataclass
class Tenant:
    email: str
    tenant_id: str
    name: str
    token: str
    api_key: str = ""
    api_secret: str = ""

    @property
    def meta(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)


@dataclass
class Slice:
    infra: Infra
    services: dict[str, ServiceProcess]
    simulator: EmbeddedSimulator
    outbox: Path
    schemas: dict[str, str]
    admin: Person | None = None

    def stub(self, name: str) -> Any:
        channel = grpc.insecure_channel(self.services[name].address)
        kind = {"tenants": rpc.TenantsServiceStub, "strategy": st_rpc.StrategyServiceStub}
        return kind.get(name, ex_rpc.ExecutionServiceStub)(channel)

    def new_tenant(self, label: str) -> Tenant:
        """A client signed up as a new tenant's owner, a fresh simulator account's key stored as its own."""
        assert self.admin is not None
        tenants = self.stub("tenants")
        person = new_client(tenants, self.outbox, self.admin, label)
        account = open_account(self.simulator, label)
        store_keys(tenants, person, account)
        tenant = tenants.GetMe(pb.GetMeRequest(), metadata=person.meta, timeout=10).tenant
        return Tenant(
            person.email,
            tenant.id,
            tenant.name,
            person.tokens.access_token,
            account["apiKey"],
            account["apiSecret"],
        )

    def rows_of(self, tenant_id: str) -> dict[str, int]:
        """Rows naming the tenant, in every table of the slice's schemas with a tenant_id column."""
        engine = create_engine(sqlalchemy_url(self.infra.postgres.url))
        counts: dict[str, int] = {}
        with engine.connect() as conn:
            tables = conn.execute(
                text(
                    "select table_schema, table_name from information_schema.columns"
                    " where column_name = 'tenant_id' and table_schema = any(:schemas)"
                ),
                {"schemas": list(self.schemas.values())},
            ).all()
            for schema, table in tables:
                counts[f"{schema}.{table}"] = conn.execute(
                    text(f'select count(*) from "{schema}"."{table}" where tenant_id = :t'), {"t": tenant_id}
                ).scalar_one()
            strategy = self.schemas["strategy"]
            counts[f"{strategy}.position_update"] = conn.execute(
                text(
                    f'select count(*) from "{strategy}".position_update where bot_id in'
                    f' (select id from "{strategy}".bot where tenant_id = :t)'
                ),
                {"t": tenant_id},
            ).scalar_one()
        engine.dispose()
        return counts


@pytest.fixture(scope="module")
def rights(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slice]:
    folder = tmp_path_factory.mktemp("data-rights")
    simulator = EmbeddedSimulator(folder, port=0, seconds_per_candle=2.0).start()
    env = {**infra.env, "BYBIT_ENV": "simulator", "BYBIT_SIMULATOR_URL": simulator.url}
    # Own schemas and JetStream consumers, so this slice shares PostgreSQL and NATS with other tests.
    plan = plan_slice(infra, env, folder, tag="r", names=GRPC)
    services = plan.services
    for service in services.values():
        service.start()
    try:
        wait_serving(services, folder, what="data-rights slice")
        slice_ = Slice(infra, services, simulator, plan.outbox, plan.schemas)
        slice_.admin = sign_up_admin(plan, slice_.stub("tenants"))
        yield slice_
    finally:
        for service in services.values():
            service.stop()
        simulator.stop()


def _bot(slice_: Slice, tenant: Tenant, *, start: bool, mode: int = common.TRADING_MODE_LIVE) -> str:
    strategy = slice_.stub("strategy")
    bot = create_bot(strategy, tenant, mode=mode)
    if start:
        strategy.StartBot(st.StartBotRequest(bot_id=bot.id), metadata=tenant.meta, timeout=30)
    return str(bot.id)


def _backtest(slice_: Slice, tenant: Tenant) -> str:
    now_ms = int(slice_.simulator.admin("clock")["now_ms"])
    hour = 3_600_000
    config = st.BacktestConfig(
        strategy_id="ppp_vishva",
        template="aggressive",
        category=common.CATEGORY_LINEAR,
        symbol="SOLUSDT",
        interval=common.INTERVAL_1_HOUR,
        initial_capital="10000",
    )
    config.time_range.start.FromMilliseconds((now_ms // hour - 150) * hour)
    config.time_range.end.FromMilliseconds((now_ms // hour - 2) * hour)
    replies = list(
        slice_.stub("strategy").RunBacktest(
            st.RunBacktestRequest(config=config), metadata=tenant.meta, timeout=120
        )
    )
    return str(replies[-1].backtest_id)


@dataclass
class World:
    a: Tenant
    b: Tenant
    a_bot: str
    b_bot: str
    a_backtest: str
    a_paper_bot: str


@pytest.fixture(scope="module")
def world(rights: Slice) -> World:
    a, b = rights.new_tenant("rights-a"), rights.new_tenant("rights-b")
    a_bot, b_bot = _bot(rights, a, start=True), _bot(rights, b, start=False)
    # A paper bot makes execution open a paper account for A, its key kept in Vault by execution.
    a_paper_bot = _bot(rights, a, start=False, mode=common.TRADING_MODE_PAPER)
    root = hvac.Client(url=rights.infra.vault.addr, token=rights.infra.vault.root_token)
    eventually(lambda: _safe_read(root, f"paper/{a.tenant_id}/exchange"), 60, "A's paper account key")
    a_backtest = _backtest(rights, a)
    execution = rights.stub("execution")
    execution.SetRiskLimits(
        ex.SetRiskLimitsRequest(limits=common.RiskLimits(max_open_positions=3)), metadata=a.meta, timeout=30
    )
    execution.SetRiskLimits(
        ex.SetRiskLimitsRequest(limits=common.RiskLimits(max_open_positions=4)), metadata=b.meta, timeout=30
    )
    # The market runs fast until A's signals became orders that filled on the exchange.
    rights.simulator.admin("clock", {"action": "speed", "seconds_per_candle": FAST_SECONDS_PER_CANDLE})
    try:
        eventually(
            lambda: execution.ListFills(ex.ListFillsRequest(page_size=5), metadata=a.meta, timeout=10).fills,
            WAIT_SECONDS,
            "a fill of tenant A's live bot",
        )
    finally:
        rights.simulator.admin("clock", {"action": "speed", "seconds_per_candle": 2.0})
    return World(a, b, a_bot, b_bot, a_backtest, a_paper_bot)


def test_export_holds_every_service_data_of_the_tenant_and_nothing_secret_or_foreign(
    rights: Slice, world: World
) -> None:
    a, b = world.a, world.b
    reply = rights.stub("tenants").ExportTenantData(pb.ExportTenantDataRequest(), metadata=a.meta, timeout=60)
    raw = reply.json_document
    document = json.loads(raw)
    assert document["schema_version"] == 2 and "not_included" not in document
    assert document["tenant"]["id"] == a.tenant_id and document["users"][0]["email"] == a.email
    strategy, execution = document["strategy"], document["execution"]
    assert {bot["id"] for bot in strategy["bots"]} == {world.a_bot, world.a_paper_bot}
    assert strategy["signals"] and {s["bot_id"] for s in strategy["signals"]} == {world.a_bot}
    assert [backtest["id"] for backtest in strategy["backtests"]] == [world.a_backtest]
    assert strategy["backtests"][0]["report"], "the backtest's report is part of the export"
    orders, fills = execution["order"], execution["fill"]
    assert orders and {o["bot_id"] for o in orders} == {world.a_bot}
    assert fills and all(f["tenant_id"] == a.tenant_id for f in fills)
    assert {r["max_open_positions"] for r in execution["risk_limits"]} == {3}
    assert {row["mode"] for row in execution["account"]} == {"LIVE", "PAPER"}, "both accounts exported"
    # Money is exported exactly, as decimal text.
    assert all(isinstance(f["exec_price"], str) and Decimal(f["exec_price"]) > 0 for f in fills)
    root = hvac.Client(url=rights.infra.vault.addr, token=rights.infra.vault.root_token)
    paper = root.secrets.kv.v2.read_secret_version(
        path=f"paper/{a.tenant_id}/exchange", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    for planted in (a.api_secret, b.api_secret, a.api_key, b.api_key, paper["api_secret"]):
        assert planted.encode() not in raw, "an exchange key or secret in the export"
    for foreign in (b.tenant_id, world.b_bot, b.email):
        assert foreign.encode() not in raw, "another tenant's data in the export"
    events = rights.stub("tenants").ListAuditEvents(
        pb.ListAuditEventsRequest(action="tenant.export"), metadata=a.meta, timeout=10
    )
    assert (
        "strategy" in events.events[0].details["parts"] and "execution" in events.events[0].details["parts"]
    )


def test_partner_rpcs_are_for_platform_services_only(rights: Slice, world: World) -> None:
    for name, request in (("strategy", st), ("execution", ex)):
        stub = rights.stub(name)
        for rpc_name in ("ExportTenantData", "DeleteTenantData"):
            message = getattr(request, f"{rpc_name}Request")(tenant_id=world.b.tenant_id)
            with pytest.raises(grpc.RpcError) as refused:
                getattr(stub, rpc_name)(message, metadata=world.a.meta, timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (name, rpc_name)
        service = (("authorization", f"Bearer {service_token(rights.infra.vault, 'tenants')}"),)
        with pytest.raises(grpc.RpcError) as empty:
            stub.DeleteTenantData(request.DeleteTenantDataRequest(), metadata=service, timeout=10)
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tenant_id" in str(
            empty.value.details()
        )


def test_delete_waits_for_every_service_and_leaves_nothing_on_failure(rights: Slice, world: World) -> None:
    c = rights.new_tenant("rights-c")
    tenants = rights.stub("tenants")
    rights.services["execution"].stop()
    try:
        with pytest.raises(grpc.RpcError) as refused:
            tenants.DeleteTenant(
                pb.DeleteTenantRequest(confirm_tenant_name=c.name), metadata=c.meta, timeout=90
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and "execution" in str(
            refused.value.details()
        )
        # Nothing of tenants' own was removed: the people can still sign in, the key is still stored.
        login = tenants.Login(pb.LoginRequest(email=c.email, password=PASSWORD), timeout=10)
        assert login.tokens.access_token
        status = tenants.GetExchangeCredentialsStatus(
            pb.GetExchangeCredentialsStatusRequest(), metadata=c.meta
        )
        assert status.status.present
    finally:
        rights.services["execution"].start()
        wait_serving(rights.services, rights.outbox.parent, what="data-rights slice")
    tenants.DeleteTenant(pb.DeleteTenantRequest(confirm_tenant_name=c.name), metadata=c.meta, timeout=90)
    assert not remaining(rights, c.tenant_id)


# The record of what happened stays: the tenant row (with its purge time) and the audit trail.
KEPT = (("tenants", "tenant"), ("tenants", "audit_event"))


def remaining(slice_: Slice, tenant_id: str) -> dict[str, int]:
    """The tenant's rows outside the record of what happened."""
    kept = {f"{slice_.schemas[schema]}.{table}" for schema, table in KEPT}
    return {name: count for name, count in slice_.rows_of(tenant_id).items() if count and name not in kept}


def test_delete_removes_the_tenant_everywhere_and_leaves_others_untouched(
    rights: Slice, world: World
) -> None:
    a, b = world.a, world.b
    before = rights.rows_of(a.tenant_id)
    assert (
        before[f"{rights.schemas['strategy']}.signal"] and before[f"{rights.schemas['execution']}.exec_fill"]
    )
    b_before = rights.rows_of(b.tenant_id)
    root = hvac.Client(url=rights.infra.vault.addr, token=rights.infra.vault.root_token)
    assert root.secrets.kv.v2.read_secret_version(
        path=f"tenants/{a.tenant_id}/exchange", mount_point="secret", raise_on_deleted_version=True
    )

    tenants = rights.stub("tenants")
    reply = tenants.DeleteTenant(
        pb.DeleteTenantRequest(confirm_tenant_name=a.name), metadata=a.meta, timeout=90
    )
    assert reply.purge_time.seconds

    left = remaining(rights, a.tenant_id)
    assert not left, f"rows of the deleted tenant remain: {left}"
    kept_audit = rights.rows_of(a.tenant_id)[f"{rights.schemas['tenants']}.audit_event"]
    assert kept_audit >= 3, "the audit trail stays (sign-up, key stored, deletion at least)"
    for path in (f"tenants/{a.tenant_id}/exchange", f"paper/{a.tenant_id}/exchange"):
        # The exchange key tenants stored, and a paper-account key execution may have opened for A.
        with pytest.raises(hvac.exceptions.InvalidPath):
            root.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret")
    # The deleted tenant's bot emits nothing more, even with the market running fast.
    assert not _signals_published(rights, a.tenant_id, seconds=8.0)
    assert not remaining(rights, a.tenant_id), "rows came back after the deletion"

    # B: every row still there, its bot and key usable.
    b_after = rights.rows_of(b.tenant_id)
    assert {k: v for k, v in b_after.items() if v < b_before[k]} == {}, "tenant B lost rows"
    bots = rights.stub("strategy").ListBots(st.ListBotsRequest(), metadata=b.meta, timeout=10).bots
    assert [bot.id for bot in bots] == [world.b_bot]
    assert root.secrets.kv.v2.read_secret_version(
        path=f"tenants/{b.tenant_id}/exchange", mount_point="secret", raise_on_deleted_version=True
    )

    # The audit chain of A still verifies and ends with the deletion, naming what each service removed.
    assert rights.admin is not None
    check = tenants.VerifyAuditChain(
        pb.VerifyAuditChainRequest(tenant_id=a.tenant_id), metadata=rights.admin.meta, timeout=10
    )
    assert check.valid and check.checked_count == kept_audit, check.message
    last = tenants.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id=a.tenant_id, page_size=1), metadata=rights.admin.meta, timeout=10
    ).events[0]
    assert last.action == "tenant.delete"
    assert "bot" in last.details["strategy"] and "fill" in last.details["execution"]

    # Deleting again: the partner services answer with nothing left to remove; tenants says it is gone.
    service = (("authorization", f"Bearer {service_token(rights.infra.vault, 'tenants')}"),)
    for name, module in (("strategy", st), ("execution", ex)):
        again = rights.stub(name).DeleteTenantData(
            module.DeleteTenantDataRequest(tenant_id=a.tenant_id), metadata=service, timeout=30
        )
        assert dict(again.deleted_rows) == {}, name
    with pytest.raises(grpc.RpcError) as gone:
        tenants.DeleteTenant(
            pb.DeleteTenantRequest(confirm_tenant_name=a.name, tenant_id=a.tenant_id),
            metadata=rights.admin.meta,
            timeout=30,
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def _safe_read(client: hvac.Client, path: str) -> dict[str, Any] | None:
    try:
        return dict(client.secrets.kv.v2.read_secret_metadata(path=path, mount_point="secret"))
    except hvac.exceptions.InvalidPath:
        return None


def _signals_published(slice_: Slice, tenant_id: str, seconds: float) -> list[bytes]:
    async def watch() -> list[bytes]:
        client = await nats.connect(slice_.infra.nats.url)
        seen: list[bytes] = []

        async def on_message(message: Any) -> None:
            seen.append(message.data)

        await client.subscribe(f"sig.{tenant_id}.>", cb=on_message)
        slice_.simulator.admin("clock", {"action": "speed", "seconds_per_candle": FAST_SECONDS_PER_CANDLE})
        try:
            await asyncio.sleep(seconds)
        finally:
            slice_.simulator.admin("clock", {"action": "speed", "seconds_per_candle": 2.0})
            await client.close()
        return seen

    return asyncio.run(watch())
