"""Tenant A can neither see nor act on tenant B's orders, fills, positions, PnL, limits, kill switches or
risk events: one row per RPC (the table must cover every RPC of the service), each called as A with
B's identifiers, then B's state checked unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.message import Message
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.context import Role
from services.common.errors import NotFound, PermissionDenied
from services.exchangesim.app import Simulator
from services.execution import models
from tests.execution.helpers import (
    Harness,
    Tenant,
    as_caller,
    entry,
    eventually,
    new_tenant,
    outcome,
    sim_orders,
)

NO_CONTEXT: Any = None
LIVE = common.TRADING_MODE_LIVE


@dataclass
class World:
    harness: Harness
    sim: Simulator
    a: Tenant
    b: Tenant
    b_order: models.Order


Check = Callable[[World, Any], Awaitable[None]]


async def _nothing_of_b(world: World, reply: Any) -> None:
    text = str(reply)
    assert world.b.tenant_id not in text and world.b_order.id not in text and world.b.bot_id not in text


async def _b_untouched(world: World, reply: Any) -> None:
    orders = await sim_orders(world.sim, world.b)
    assert len(orders) == 1
    positions = await world.harness.rows(models.Position, tenant_id=world.b.tenant_id)
    assert positions[0].size > 0
    limits = await world.harness.rows(models.RiskLimitsRow, tenant_id=world.b.tenant_id)
    switches = await world.harness.rows(models.KillSwitchRow, tenant_id=world.b.tenant_id)
    assert limits == [] and switches == []
    if reply is not None:
        await _nothing_of_b(world, reply)


CASES: dict[str, tuple[Callable[[World], Message], type[Exception] | None, Check]] = {
    "ListOrders": (
        lambda w: pb.ListOrdersRequest(bot_id=w.b.bot_id, include_external=True),
        None,
        _nothing_of_b,
    ),
    "GetOrder": (lambda w: pb.GetOrderRequest(id=w.b_order.id), NotFound, _b_untouched),
    "CancelOrder": (lambda w: pb.CancelOrderRequest(order_id=w.b_order.id), NotFound, _b_untouched),
    "ListFills": (lambda w: pb.ListFillsRequest(order_id=w.b_order.id), None, _nothing_of_b),
    "ListPositions": (lambda w: pb.ListPositionsRequest(bot_id=w.b.bot_id), None, _nothing_of_b),
    "ClosePosition": (
        lambda w: pb.ClosePositionRequest(
            category=common.CATEGORY_LINEAR, symbol=w.b.symbol, mode=LIVE, bot_id=w.b.bot_id
        ),
        NotFound,
        _b_untouched,
    ),
    "GetPnL": (lambda w: pb.GetPnLRequest(mode=LIVE, bot_id=w.b.bot_id), None, _nothing_of_b),
    "GetAccountSummary": (lambda w: pb.GetAccountSummaryRequest(mode=LIVE), None, _nothing_of_b),
    "GetRiskLimits": (lambda w: pb.GetRiskLimitsRequest(bot_id=w.b.bot_id), None, _nothing_of_b),
    "SetRiskLimits": (
        lambda w: pb.SetRiskLimitsRequest(bot_id=w.b.bot_id, limits=common.RiskLimits(max_open_positions=1)),
        None,
        _b_untouched,
    ),
    "SetKillSwitch": (
        lambda w: pb.SetKillSwitchRequest(
            scope=pb.KILL_SWITCH_SCOPE_TENANT, engaged=True, reason="x", tenant_id=w.b.tenant_id
        ),
        PermissionDenied,
        _b_untouched,
    ),
    "ListKillSwitches": (lambda w: pb.ListKillSwitchesRequest(include_released=True), None, _nothing_of_b),
    "ListRiskEvents": (lambda w: pb.ListRiskEventsRequest(bot_id=w.b.bot_id), None, _nothing_of_b),
    # Service-only (tenants' data rights): a user naming B's tenant is refused, B keeps everything.
    "ExportTenantData": (
        lambda w: pb.ExportTenantDataRequest(tenant_id=w.b.tenant_id),
        PermissionDenied,
        _b_untouched,
    ),
    "DeleteTenantData": (
        lambda w: pb.DeleteTenantDataRequest(tenant_id=w.b.tenant_id),
        PermissionDenied,
        _b_untouched,
    ),
}


def test_the_table_covers_every_rpc() -> None:
    assert set(CASES) == set(pb.DESCRIPTOR.services_by_name["ExecutionService"].methods_by_name)


@pytest.fixture
async def world(harness: Harness, sim: Simulator, symbol: str) -> World:
    a = await new_tenant(harness, symbol)
    b = await new_tenant(harness, symbol)
    signal = entry(sim, b)
    await harness.execution.intake.handle(signal, redelivered=False)
    result = await outcome(harness, b, signal.id)
    (order,) = await harness.rows(models.Order, id=result.order_id)

    async def b_holds() -> bool:
        rows = await harness.rows(models.Position, tenant_id=b.tenant_id)
        return bool(rows) and rows[0].size > 0

    await eventually(b_holds, 30, "B's position")
    await eventually(lambda: harness.rows(models.Fill, tenant_id=b.tenant_id), 30, "B's fill")
    return World(harness, sim, a, b, order)


@pytest.mark.parametrize("rpc", sorted(CASES))
async def test_tenant_a_cannot_see_or_act_on_tenant_b(world: World, rpc: str) -> None:
    build, refusal, check = CASES[rpc]
    as_caller(world.a.tenant_id, Role.OWNER)
    method = getattr(world.harness.execution.servicer, rpc)
    if refusal is not None:
        with pytest.raises(refusal):
            await method(build(world), NO_CONTEXT)
        await check(world, None)
    else:
        await check(world, await method(build(world), NO_CONTEXT))
    # B, asking the same, still sees its own.
    as_caller(world.b.tenant_id, Role.VIEWER)
    mine = await world.harness.execution.servicer.ListOrders(pb.ListOrdersRequest(), NO_CONTEXT)
    assert [o.id for o in mine.orders] == [world.b_order.id]


async def test_roles_are_enforced(world: World) -> None:
    servicer = world.harness.execution.servicer
    as_caller(world.b.tenant_id, Role.VIEWER)
    with pytest.raises(PermissionDenied):
        await servicer.CancelOrder(pb.CancelOrderRequest(order_id=world.b_order.id), NO_CONTEXT)
    as_caller(world.b.tenant_id, Role.TRADER)
    with pytest.raises(PermissionDenied):
        await servicer.SetRiskLimits(pb.SetRiskLimitsRequest(), NO_CONTEXT)
    with pytest.raises(PermissionDenied):
        await servicer.SetKillSwitch(
            pb.SetKillSwitchRequest(scope=pb.KILL_SWITCH_SCOPE_GLOBAL, engaged=True, reason="x"), NO_CONTEXT
        )
