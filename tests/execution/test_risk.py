"""Every risk limit and kill switch blocks an order with a stored (and published) reason; the circuit
breaker trips on repeated exchange errors and resets after its cooldown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb
from tradebot.strategy.v1 import events_pb2 as sig

from services.common.context import Role
from services.exchangesim.app import SimConfig, Simulator
from services.execution import models
from services.execution.intake import Unresolved
from tests.execution.helpers import (
    Harness,
    Tenant,
    as_caller,
    bot_event,
    clear_faults,
    entry,
    eventually,
    fault,
    make_signal,
    new_tenant,
    outcome,
    price,
    sim_orders,
    start_harness,
    unique,
    unique_symbol,
)
from tests.helpers.infra import Infra

NO_CONTEXT: Any = None


async def skipped_for(harness: Harness, tenant: Tenant, signal: sig.Signal) -> str:
    await harness.execution.intake.handle(signal, redelivered=False)
    result = await outcome(harness, tenant, signal.id)
    assert result.outcome == "SKIPPED", result
    events = await harness.rows(models.RiskEventRow, tenant_id=tenant.tenant_id, signal_id=signal.id)
    assert len(events) == 1 and events[0].message and events[0].kind == "RISK_EVENT_KIND_SIGNAL_SKIPPED"
    assert events[0].reason == result.reason
    return result.reason


async def set_limits(harness: Harness, tenant: Tenant, **limits: Any) -> None:
    as_caller(tenant.tenant_id, Role.OWNER)
    await harness.execution.servicer.SetRiskLimits(
        pb.SetRiskLimitsRequest(limits=common.RiskLimits(**limits)), NO_CONTEXT
    )


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"max_position_notional": "1"}, "RISK_REASON_MAX_POSITION_NOTIONAL"),
        ({"max_leverage": "0.001"}, "RISK_REASON_MAX_LEVERAGE"),
    ],
)
async def test_sizing_limits_block_with_their_reason(
    harness: Harness, sim: Simulator, symbol: str, limits: dict[str, str], reason: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    await set_limits(harness, tenant, **limits)
    assert await skipped_for(harness, tenant, entry(sim, tenant)) == reason
    assert await sim_orders(sim, tenant) == []


async def test_below_the_instruments_minimum_is_skipped(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol, capital="1", risk_per_trade=0.0001)
    assert await skipped_for(harness, tenant, entry(sim, tenant)) == "RISK_REASON_BELOW_MIN_QTY"


async def test_max_orders_per_minute(harness: Harness, sim: Simulator, symbol: str) -> None:
    tenant = await new_tenant(harness, symbol)
    await set_limits(harness, tenant, max_orders_per_minute=1)
    await harness.execution.intake.handle(entry(sim, tenant), redelivered=False)
    exit_ = make_signal(tenant, sig.SIGNAL_ACTION_EXIT, common.SIDE_SELL, reference=price(sim, symbol))
    await eventually(lambda: _held(harness, tenant), 20, "position")
    assert await skipped_for(harness, tenant, exit_) == "RISK_REASON_RATE_LIMIT"
    assert len(await sim_orders(sim, tenant)) == 1


async def _held(harness: Harness, tenant: Tenant) -> bool:
    rows = await harness.rows(models.Position, tenant_id=tenant.tenant_id)
    return bool(rows) and rows[0].size > 0 and rows[0].unrealized_pnl != 0


async def test_daily_loss_limit_counts_unrealised_loss(harness: Harness, sim: Simulator, symbol: str) -> None:
    tenant = await new_tenant(harness, symbol)
    await set_limits(harness, tenant, daily_loss_limit="0.0001")
    await harness.execution.intake.handle(entry(sim, tenant), redelivered=False)
    # Bought at the ask, marked at the last price: a small unrealised loss at once.
    await eventually(lambda: _held(harness, tenant), 20, "position with its unrealised PnL")
    reverse = make_signal(
        tenant,
        sig.SIGNAL_ACTION_REVERSE,
        common.SIDE_SELL,
        reference=price(sim, symbol),
        stop=price(sim, symbol) * Decimal("1.02"),
    )
    assert await skipped_for(harness, tenant, reverse) == "RISK_REASON_DAILY_LOSS_LIMIT"


async def test_entry_while_a_position_is_open_and_exit_without_one(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    exit_ = make_signal(tenant, sig.SIGNAL_ACTION_EXIT, common.SIDE_SELL, reference=price(sim, symbol))
    assert await skipped_for(harness, tenant, exit_) == "RISK_REASON_POSITION_STATE"
    await harness.execution.intake.handle(entry(sim, tenant), redelivered=False)
    await eventually(lambda: _held(harness, tenant), 20, "position")
    assert await skipped_for(harness, tenant, entry(sim, tenant)) == "RISK_REASON_POSITION_STATE"


async def test_no_credentials(harness: Harness, sim: Simulator, symbol: str) -> None:
    tenant = Tenant(unique("t-"), unique("b-"), sim.create_account({"USDT": "100"}), symbol)
    await harness.execution.tenant_events.on_bot(bot_event(tenant, capital="100", risk_per_trade=0.01))
    assert await skipped_for(harness, tenant, entry(sim, tenant)) == "RISK_REASON_NO_CREDENTIALS"


async def test_stale_signal(harness: Harness, sim: Simulator, symbol: str) -> None:
    tenant = await new_tenant(harness, symbol)
    old = entry(sim, tenant)
    old.create_time.FromSeconds(old.create_time.seconds - 3600)
    assert await skipped_for(harness, tenant, old) == "RISK_REASON_STALE_SIGNAL"


@pytest.mark.parametrize("scope", ["BOT", "TENANT", "GLOBAL"])
async def test_kill_switches_block_and_release(
    harness: Harness, sim: Simulator, symbol: str, scope: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    servicer = harness.execution.servicer
    request = pb.SetKillSwitchRequest(
        scope=pb.KillSwitchScope.Value(f"KILL_SWITCH_SCOPE_{scope}"),
        bot_id=tenant.bot_id if scope == "BOT" else "",
        engaged=True,
        reason="test drill",
    )
    as_caller(tenant.tenant_id, Role.ADMIN if scope == "GLOBAL" else Role.TRADER)
    reply = await servicer.SetKillSwitch(request, NO_CONTEXT)
    assert reply.kill_switch.engaged
    try:
        assert await skipped_for(harness, tenant, entry(sim, tenant)) == "RISK_REASON_KILL_SWITCH"
        as_caller(tenant.tenant_id, Role.VIEWER)
        listed = await servicer.ListKillSwitches(pb.ListKillSwitchesRequest(), NO_CONTEXT)
        assert [s.scope for s in listed.kill_switches] == [request.scope]
    finally:
        as_caller(tenant.tenant_id, Role.ADMIN if scope == "GLOBAL" else Role.TRADER)
        request.engaged = False
        await servicer.SetKillSwitch(request, NO_CONTEXT)
    signal = entry(sim, tenant)
    await harness.execution.intake.handle(signal, redelivered=False)
    assert (await outcome(harness, tenant, signal.id)).outcome == "ORDERED"
    kinds = [
        e.kind
        for e in await harness.rows(
            models.RiskEventRow, tenant_id=tenant.tenant_id, reason="RISK_REASON_MANUAL"
        )
    ]
    assert (
        sorted(kinds) == ["RISK_EVENT_KIND_KILL_SWITCH_ENGAGED", "RISK_EVENT_KIND_KILL_SWITCH_RELEASED"]
        or scope == "GLOBAL"
    )


@pytest.fixture
async def two_symbols(infra: Infra) -> AsyncIterator[tuple[Simulator, Harness, str, str]]:
    first, second = unique_symbol(), unique_symbol()
    sim = Simulator(
        SimConfig(
            port=0, paused=True, data_files=(), random_walk={first: Decimal("100"), second: Decimal("50")}
        )
    )
    await sim.start()
    harness = await start_harness(infra, sim)
    try:
        yield sim, harness, first, second
    finally:
        await harness.stop()
        await sim.stop()


async def test_max_open_positions(two_symbols: tuple[Simulator, Harness, str, str]) -> None:
    sim, harness, first, second = two_symbols
    tenant = await new_tenant(harness, first)
    other = Tenant(tenant.tenant_id, unique("b-"), tenant.key, second)
    await harness.execution.tenant_events.on_bot(bot_event(other, capital="1000", risk_per_trade=0.01))
    await set_limits(harness, tenant, max_open_positions=1)
    await harness.execution.intake.handle(entry(sim, tenant), redelivered=False)
    await eventually(lambda: _held(harness, tenant), 20, "first position")
    assert await skipped_for(harness, other, entry(sim, other)) == "RISK_REASON_MAX_OPEN_POSITIONS"


async def test_circuit_breaker_trips_and_resets(infra: Infra, sim: Simulator, symbol: str) -> None:
    harness = await start_harness(
        infra,
        sim,
        EXECUTION_BREAKER_ERRORS="3",
        EXECUTION_BREAKER_COOLDOWN_SECONDS="4",
        EXECUTION_ORDER_DEADLINE_SECONDS="2",
    )
    try:
        tenant = await new_tenant(harness, symbol)
        await fault(sim, kind="http", status=503, count=1000, path="/v5/order/create")
        first = entry(sim, tenant)
        with pytest.raises(Unresolved):
            await harness.execution.intake.handle(first, redelivered=False)
        assert await skipped_for(harness, tenant, entry(sim, tenant)) == "RISK_REASON_CIRCUIT_BREAKER"
        await clear_faults(sim)
        await asyncio.sleep(4.2)  # the cooldown is wall-clock time: it protects the real exchange
        # The unresolved first signal comes back: looked up (nothing there), then placed once.
        await harness.execution.intake.handle(first, redelivered=True)
        assert (await outcome(harness, tenant, first.id)).outcome == "ORDERED"
        assert not harness.execution.servicer.deps.placer.breaker.is_open(tenant.tenant_id)
        assert len(await sim_orders(sim, tenant)) == 1
    finally:
        await harness.stop()
