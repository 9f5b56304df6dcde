"""Right after StartBot a signal can reach execution before the bot's lifecycle event does: the
signal is kept (redelivered) until the bot is known and then traded, never skipped as unknown; a
signal whose bot never appears is skipped after a bounded number of deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.exchangesim.app import Simulator
from services.execution import models
from tests.execution.helpers import (
    Harness,
    Tenant,
    bot_event,
    entry,
    eventually,
    outcome,
    publish,
    sim_orders,
    start_harness,
    store_keys,
    unique,
)
from tests.helpers.infra import Infra


@pytest.fixture
def tenant_id() -> str:
    return unique("t-")


async def own_harness(
    infra: Infra, sim: Simulator, tenant_id: str, retries: str = "30", delay: str = "1"
) -> Harness:
    # Only this tenant's signals: other tests' signals in the stream must not count as waits here.
    return await start_harness(
        infra,
        sim,
        EXECUTION_SIGNAL_SUBJECT=f"sig.{tenant_id}.>",
        EXECUTION_ACCOUNT_STREAMS="false",
        EXECUTION_UNKNOWN_BOT_RETRIES=retries,
        EXECUTION_UNKNOWN_BOT_DELAY_SECONDS=delay,
    )


async def keys_only(harness: Harness, sim: Simulator, tenant_id: str, symbol: str) -> Tenant:
    """A tenant with exchange keys whose bot execution has not heard of yet."""
    tenant = Tenant(tenant_id, unique("b-"), sim.create_account({"USDT": "10000"}), symbol)
    await asyncio.to_thread(store_keys, harness.infra, tenant.tenant_id, tenant.key)
    return tenant


@pytest.fixture
async def patient(infra: Infra, sim: Simulator, tenant_id: str) -> AsyncIterator[Harness]:
    running = await own_harness(infra, sim, tenant_id)
    try:
        yield running
    finally:
        await running.stop()


async def test_a_signal_ahead_of_its_bot_waits_for_the_bot_and_is_traded(
    patient: Harness, sim: Simulator, tenant_id: str, symbol: str
) -> None:
    harness = patient
    tenant = await keys_only(harness, sim, tenant_id, symbol)
    signal = entry(sim, tenant)
    await publish(harness.bus, signal)
    await eventually(lambda: harness.execution.intake.bot_waits >= 2, 30, "the signal put back twice")
    assert await harness.rows(models.SignalOutcome, tenant_id=tenant.tenant_id) == []
    await harness.execution.tenant_events.on_bot(bot_event(tenant, capital="1000", risk_per_trade=0.01))
    done = await outcome(harness, tenant, signal.id, within=40)
    assert done.outcome == "ORDERED", done.reason
    assert [o["orderLinkId"] for o in await sim_orders(sim, tenant)] == [f"tb-{signal.id}"]


@pytest.fixture
async def impatient(infra: Infra, sim: Simulator, tenant_id: str) -> AsyncIterator[Harness]:
    running = await own_harness(infra, sim, tenant_id, retries="2", delay="0.2")
    try:
        yield running
    finally:
        await running.stop()


async def test_a_signal_whose_bot_never_appears_is_skipped_after_bounded_retries(
    impatient: Harness, sim: Simulator, tenant_id: str, symbol: str
) -> None:
    tenant = await keys_only(impatient, sim, tenant_id, symbol)
    signal = entry(sim, tenant)
    await publish(impatient.bus, signal)
    done = await outcome(impatient, tenant, signal.id, within=30)
    assert done.outcome == "SKIPPED"
    assert impatient.execution.intake.bot_waits == 2
    [event] = await impatient.rows(models.RiskEventRow, tenant_id=tenant.tenant_id, signal_id=signal.id)
    assert f"bot {tenant.bot_id} is unknown to the execution service" in event.message
    assert await sim_orders(sim, tenant) == []
