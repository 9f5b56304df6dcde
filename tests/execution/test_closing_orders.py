"""Closing orders are orders of the platform's: a kill switch's and ClosePosition's are stored under an
orderLinkId with the platform's prefix before they are sent, an answer lost after the exchange took
one is followed by lookup (never a second order), and a ClosePosition repeated after an unknown
outcome follows the first order instead of sending another."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.context import Role
from services.common.errors import Unavailable
from services.exchangesim.app import Simulator
from services.execution import models
from services.execution.reconcile import NEVER_SENT
from services.execution.rpc_risk import FLATTENING
from tests.execution.helpers import (
    LINEAR,
    Harness,
    Tenant,
    as_caller,
    clear_faults,
    eventually,
    fault,
    new_tenant,
    open_position,
    resting_order,
    sim_orders,
    sim_size,
)

LIVE = common.TRADING_MODE_LIVE
NO_CONTEXT: Any = None


async def with_live_position(harness: Harness, sim: Simulator, symbol: str) -> Tenant:
    tenant = await new_tenant(harness, symbol)
    await open_position(harness, sim, tenant, LIVE)
    assert sim_size(sim, tenant.key.uid, symbol) > 0
    return tenant


async def switch(harness: Harness, tenant: Tenant, *, engaged: bool) -> None:
    """The tenant's kill switch, engaged to close positions, or released."""
    request = pb.SetKillSwitchRequest(
        scope=pb.KILL_SWITCH_SCOPE_TENANT, engaged=engaged, reason="drill", close_positions=engaged
    )
    as_caller(tenant.tenant_id, Role.TRADER)
    await harness.execution.servicer.SetKillSwitch(request, NO_CONTEXT)


async def test_a_kill_switch_closes_with_a_stored_order_and_follows_a_lost_answer(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await with_live_position(harness, sim, symbol)
    uid = tenant.key.uid
    adopted = harness.execution.servicer.deps.placer.adopted
    # The exchange takes the closing order and its answer never comes back.
    await fault(sim, kind="accept_timeout", delay_ms=3000, count=1, path="/v5/order/create")
    await switch(harness, tenant, engaged=True)
    try:
        await eventually(lambda: sim_size(sim, uid, symbol) == 0, 30, "position closed on the exchange")
        closing = [o for o in await sim_orders(sim, tenant) if o["reduceOnly"]]
        assert len(closing) == 1, closing  # one order, despite the lost answer
        link = closing[0]["orderLinkId"]
        assert link.startswith("tb-kill-"), link

        async def stored() -> list[models.Order]:
            rows = await harness.rows(models.Order, tenant_id=tenant.tenant_id, order_link_id=link)
            return rows if rows and rows[0].status == "Filled" else []

        await asyncio.wait_for(asyncio.gather(*FLATTENING), 30)  # the kill switch's closing is done
        row = (await eventually(stored, 20, "closing order stored and filled"))[0]
        assert row.exchange_order_id == closing[0]["orderId"]
        assert row.reduce_only and not row.external and row.mode == "LIVE"
        assert row.bot_id == tenant.bot_id
        assert harness.execution.servicer.deps.placer.adopted > adopted
        # The client's order list shows it as the platform's, not as one placed by hand.
        as_caller(tenant.tenant_id, Role.VIEWER)
        listed = await harness.execution.servicer.ListOrders(pb.ListOrdersRequest(), NO_CONTEXT)
        assert link in [o.order_link_id for o in listed.orders]
    finally:
        await clear_faults(sim)
        await switch(harness, tenant, engaged=False)


async def test_close_position_repeated_after_an_unknown_outcome_follows_the_first_order(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await with_live_position(harness, sim, symbol)
    uid = tenant.key.uid
    request = pb.ClosePositionRequest(
        category=LINEAR, symbol=symbol, mode=LIVE, request_id=f"close-{uuid.uuid4().hex[:12]}"
    )
    # Every send hangs past the client's timeout and is dropped unserved: the outcome stays unknown.
    await fault(sim, kind="hang", delay_ms=2500, count=100, path="/v5/order/create")
    as_caller(tenant.tenant_id, Role.TRADER)
    with pytest.raises(Unavailable, match=request.request_id):
        await harness.execution.servicer.ClosePosition(request, NO_CONTEXT)
    pending = await harness.rows(models.Order, tenant_id=tenant.tenant_id, order_link_id=request.request_id)
    assert [o.status for o in pending] == ["PendingSubmit"]
    assert sim_size(sim, uid, symbol) > 0

    await clear_faults(sim)
    as_caller(tenant.tenant_id, Role.TRADER)
    reply = await harness.execution.servicer.ClosePosition(request, NO_CONTEXT)
    assert reply.order.id == pending[0].id and reply.order.exchange_order_id
    await eventually(lambda: sim_size(sim, uid, symbol) == 0, 20, "position closed on the exchange")
    placed = [o for o in await sim_orders(sim, tenant) if o["orderLinkId"] == request.request_id]
    assert len(placed) == 1
    # A third time answers the same order and sends nothing.
    again = await harness.execution.servicer.ClosePosition(request, NO_CONTEXT)
    assert again.order.id == pending[0].id
    assert len([o for o in await sim_orders(sim, tenant) if o["reduceOnly"]]) == 1


async def test_a_kill_switch_keeps_closing_until_flat_and_settles_an_order_that_never_got_through(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    """Every send hangs until the placement's deadline passes: the closing order stays PENDING_SUBMIT.
    A reconciliation after the deadline finds no such order on the exchange and says so on the row;
    the switch, still engaged, then closes the position with a new order. Once released, it does not."""
    tenant = await with_live_position(harness, sim, symbol)
    uid = tenant.key.uid
    await fault(sim, kind="hang", delay_ms=2500, count=100, path="/v5/order/create")
    await switch(harness, tenant, engaged=True)
    try:
        await asyncio.wait_for(asyncio.gather(*FLATTENING), 30)
        first = await harness.rows(models.Order, tenant_id=tenant.tenant_id, reduce_only=True)
        assert [o.status for o in first] == ["PendingSubmit"]
        listed = await harness.execution.servicer.ListKillSwitches(pb.ListKillSwitchesRequest(), NO_CONTEXT)
        assert [(s.engaged, s.close_positions) for s in listed.kill_switches] == [(True, True)]
        await clear_faults(sim)

        await eventually(lambda: sim_size(sim, uid, symbol) == 0, 60, "position closed by a later attempt")
        closing = await harness.rows(models.Order, tenant_id=tenant.tenant_id, reduce_only=True)
        rows = {o.id: o for o in closing}
        assert rows[first[0].id].status == "Rejected" and rows[first[0].id].reject_reason == NEVER_SENT
        placed = [o for o in await sim_orders(sim, tenant) if o["reduceOnly"]]
        assert len(placed) == 1 and placed[0]["orderLinkId"].startswith("tb-kill-")
        assert placed[0]["orderLinkId"] in {o.order_link_id for o in rows.values()}
    finally:
        await clear_faults(sim)
        await switch(harness, tenant, engaged=False)

    # Released: a new position stays open through several reconciliations (every 2 s here).
    await open_position(harness, sim, tenant, LIVE)
    await asyncio.sleep(6)
    assert sim_size(sim, uid, symbol) > 0


async def test_an_order_that_cannot_be_cancelled_does_not_stop_the_closing(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    """The exchange answers "order not exists" to the cancel of a resting order (filled or cancelled
    meanwhile); the kill switch still closes the position."""
    tenant = await with_live_position(harness, sim, symbol)
    client = await harness.execution.accounts.ensure_ready(tenant.tenant_id)
    assert client is not None
    await resting_order(harness, sim, client, tenant.tenant_id, tenant.key.uid, "LIVE", symbol)
    await fault(sim, kind="error", code=110001, count=1, path="/v5/order/cancel")
    await switch(harness, tenant, engaged=True)
    try:
        await asyncio.wait_for(asyncio.gather(*FLATTENING), 30)
        assert sim_size(sim, tenant.key.uid, symbol) == 0
    finally:
        await clear_faults(sim)
        await switch(harness, tenant, engaged=False)
