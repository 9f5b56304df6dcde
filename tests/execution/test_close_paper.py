"""Closing PAPER positions as LIVE ones are closed: ClosePosition (whole, partial, once per
request_id, NotFound when flat) and a kill switch with close_positions, on the tenant's paper account
on the simulator, while the tenant's LIVE account is left as it is (and the other way round)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.context import Role
from services.common.errors import NotFound
from services.exchangesim.app import Simulator
from services.execution import models
from tests.execution.helpers import (
    LINEAR,
    Harness,
    Tenant,
    as_caller,
    eventually,
    new_tenant,
    open_position,
    paper_bot,
    paper_uid,
    resting_order,
    sim_size,
    stored_size,
)

PAPER, LIVE = common.TRADING_MODE_PAPER, common.TRADING_MODE_LIVE
NO_CONTEXT: Any = None


async def both_positions(harness: Harness, sim: Simulator, symbol: str) -> tuple[Tenant, Tenant, int]:
    """A tenant with a LIVE position (their own keys) and a PAPER position on the same symbol."""
    live = await new_tenant(harness, symbol)
    paper = await paper_bot(harness, live.tenant_id, symbol)
    await eventually(
        lambda: (s := harness.execution.paper.tenants.get(live.tenant_id)) is not None and s.reconciled,
        20,
        "paper account opened and reconciled",
    )
    await open_position(harness, sim, live, LIVE)
    await open_position(harness, sim, paper, PAPER)
    return live, paper, paper_uid(harness, sim, live.tenant_id)


async def close(harness: Harness, tenant_id: str, symbol: str, mode: int, **fields: str) -> pb.Order:
    as_caller(tenant_id, Role.TRADER)
    request = pb.ClosePositionRequest(category=LINEAR, symbol=symbol, mode=mode, **fields)
    reply: pb.ClosePositionResponse = await harness.execution.servicer.ClosePosition(request, NO_CONTEXT)
    return reply.order


async def test_paper_and_live_positions_close_separately_in_part_and_whole_once_per_request_id(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    live, _paper, uid = await both_positions(harness, sim, symbol)
    tenant = live.tenant_id
    live_size = sim_size(sim, live.key.uid, symbol)
    paper_size = sim_size(sim, uid, symbol)
    assert live_size > 0 and paper_size > 0
    rules = await harness.execution.servicer.deps.instruments.get("linear", symbol)
    assert rules is not None
    half = rules.round_qty(paper_size / 2)
    assert 0 < half < paper_size

    request_id = f"close-{uuid.uuid4().hex[:12]}"
    first = await close(harness, tenant, symbol, PAPER, qty=str(half), request_id=request_id)
    again = await close(harness, tenant, symbol, PAPER, qty=str(half), request_id=request_id)
    assert again.id == first.id and first.mode == PAPER and first.reduce_only
    placed = [o for o in sim.venue.accounts.by_uid[uid].orders.values() if o.order_link_id == request_id]
    assert len(placed) == 1 and placed[0].qty == half and placed[0].reduce_only
    await eventually(
        lambda: sim_size(sim, uid, symbol) == paper_size - half, 15, "paper position reduced on the simulator"
    )

    async def paper_stored_reduced() -> bool:
        return await stored_size(harness, tenant, "PAPER") == paper_size - half

    await eventually(paper_stored_reduced, 15, "paper position reduced in the service")
    # Nothing of it reached the LIVE account.
    assert sim_size(sim, live.key.uid, symbol) == live_size
    assert not any(
        o.order_link_id == request_id for o in sim.venue.accounts.by_uid[live.key.uid].orders.values()
    )
    assert await stored_size(harness, tenant, "LIVE") == live_size

    # Closing the LIVE position leaves the paper one.
    await close(harness, tenant, symbol, LIVE)
    await eventually(lambda: sim_size(sim, live.key.uid, symbol) == 0, 15, "live position closed")
    assert sim_size(sim, uid, symbol) == paper_size - half

    # The rest of the paper position, then nothing left to close: NotFound naming the symbol.
    await close(harness, tenant, symbol, PAPER)
    await eventually(lambda: sim_size(sim, uid, symbol) == 0, 15, "paper position closed")

    async def paper_flat() -> bool:
        return await stored_size(harness, tenant, "PAPER") == 0

    await eventually(paper_flat, 15, "paper position flat in the service")
    with pytest.raises(NotFound, match=symbol):
        await close(harness, tenant, symbol, PAPER)
    closing = await harness.rows(models.Order, tenant_id=tenant, mode="PAPER", reduce_only=True)
    assert len(closing) == 2  # the partial close (once, despite the repeat) and the rest


async def test_closing_a_paper_position_leaves_the_live_one(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    live, _paper, uid = await both_positions(harness, sim, symbol)
    live_size = sim_size(sim, live.key.uid, symbol)
    await close(harness, live.tenant_id, symbol, PAPER)
    await eventually(lambda: sim_size(sim, uid, symbol) == 0, 15, "paper position closed")
    assert sim_size(sim, live.key.uid, symbol) == live_size
    assert await stored_size(harness, live.tenant_id, "LIVE") == live_size
    assert await harness.rows(models.Order, tenant_id=live.tenant_id, mode="LIVE", reduce_only=True) == []


async def test_kill_switch_closing_positions_flattens_the_paper_account(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    bot = await paper_bot(harness, tenant, symbol)
    await eventually(
        lambda: (s := harness.execution.paper.tenants.get(tenant)) is not None and s.reconciled,
        20,
        "paper account opened and reconciled",
    )
    await open_position(harness, sim, bot, PAPER)
    uid = paper_uid(harness, sim, tenant)
    # A resting paper order of the platform's (its orderLinkId prefix), far below the market.
    client = await harness.execution.paper.ensure_ready(tenant)
    assert client is not None
    link = await resting_order(harness, sim, client, tenant, uid, "PAPER", symbol)
    switch = pb.SetKillSwitchRequest(
        scope=pb.KILL_SWITCH_SCOPE_TENANT, engaged=True, reason="drill", close_positions=True
    )
    as_caller(tenant, Role.TRADER)
    await harness.execution.servicer.SetKillSwitch(switch, NO_CONTEXT)
    try:
        resting = next(o for o in sim.venue.accounts.by_uid[uid].orders.values() if o.order_link_id == link)
        await eventually(lambda: resting.status == "Cancelled", 20, "resting paper order cancelled")
        await eventually(lambda: sim_size(sim, uid, symbol) == 0, 20, "paper position closed")
    finally:
        as_caller(tenant, Role.TRADER)
        switch.engaged, switch.close_positions = False, False
        await harness.execution.servicer.SetKillSwitch(switch, NO_CONTEXT)
