"""An entry's stop-loss and take-profit moved to its fill (decision 0037): the entry order carries the
signal's levels (from the candle close), and once it fills away from that price the simulator's
position holds fill -/+ the signal's distances, on the tick grid; stored and published on the
position; set once, not again after a restart; kept pending (original levels in force) while the
exchange cannot be reached."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import events_pb2 as sig

from services.common import bus as bus_module
from services.exchangesim.app import Simulator
from services.execution import models
from services.execution.server import build
from tests.execution.helpers import (
    Harness,
    Tenant,
    clear_faults,
    eventually,
    fault,
    make_signal,
    new_tenant,
    outcome,
    price,
    publish,
    settings_env,
    settings_of,
    start_harness,
)
from tests.helpers.infra import Infra

STOP_GAP, TARGET_GAP = Decimal("2.5"), Decimal("4.5")


async def restarted(harness: Harness) -> Harness:
    """A new execution on the same schema and consumers: what a restart of the process sees."""
    schema = harness.execution.settings.execution_db_schema
    env = settings_env(harness.infra, harness.sim.http_url, schema, EXECUTION_ACCOUNT_STREAMS="true")
    bus = await bus_module.connect(harness.infra.nats.url, "execution-test")
    execution = await build(settings_of(env), bus)
    await execution.start(bus)
    return Harness(harness.infra, harness.sim, execution, bus)


async def entry_away_from_the_close(harness: Harness, sim: Simulator, tenant: Tenant) -> sig.Signal:
    """A long entry whose reference (the candle close) is 1 % below the market it fills at."""
    reference = (price(sim, tenant.symbol) * Decimal("0.99")).quantize(Decimal("0.01"))
    signal = make_signal(
        tenant,
        sig.SIGNAL_ACTION_ENTRY,
        common.SIDE_BUY,
        reference=reference,
        stop=reference - STOP_GAP,
        take=reference + TARGET_GAP,
    )
    await publish(harness.bus, signal)
    done = await outcome(harness, tenant, signal.id)
    assert done.outcome == "ORDERED", done.reason
    return signal


def sim_position(sim: Simulator, tenant: Tenant) -> Any:
    return sim.venue.accounts.by_uid[tenant.key.uid].positions.get(tenant.symbol)


def sim_entry(sim: Simulator, tenant: Tenant, signal: sig.Signal) -> Any:
    orders = sim.venue.accounts.by_uid[tenant.key.uid].orders.values()
    return next(o for o in orders if o.order_link_id == f"tb-{signal.id}")


async def expected_levels(harness: Harness, fill: Decimal, symbol: str) -> tuple[Decimal, Decimal]:
    rules = await harness.execution.servicer.deps.instruments.get("linear", symbol)
    assert rules is not None
    # On the tick grid, toward the fill (never more risk than the signal's distance).
    stop = rules.protective_price(fill - STOP_GAP, fill)
    target = rules.protective_price(fill + TARGET_GAP, fill)
    assert stop is not None and target is not None
    return stop, target


async def stored_order(harness: Harness, tenant: Tenant, signal: sig.Signal) -> models.Order:
    [row] = await harness.rows(models.Order, tenant_id=tenant.tenant_id, signal_id=signal.id)
    return row


async def test_levels_move_to_the_fill_once_and_not_again_after_a_restart(
    infra: Infra, sim: Simulator, symbol: str
) -> None:
    first = await start_harness(infra, sim, EXECUTION_ACCOUNT_STREAMS="true")
    try:
        tenant, stop = await _set_once(first, sim, symbol)
    finally:
        await first.stop()
    # Moved by hand on the exchange meanwhile: a second call after the restart would undo this.
    position = sim_position(sim, tenant)
    position.stop_loss = stop - Decimal(1)
    second = await restarted(first)
    try:
        await eventually(
            lambda: (
                (s := second.execution.accounts.tenants.get(tenant.tenant_id)) is not None and s.reconciled
            ),
            20,
            "account reconciled after the restart",
        )
        await second.execution.accounts.reconcile(tenant.tenant_id)  # reconciliation settles pending entries
        assert second.execution.brackets is not None and second.execution.brackets.calls == 0
        assert sim_position(sim, tenant).stop_loss == stop - Decimal(1)
    finally:
        await second.stop()


async def _set_once(first: Harness, sim: Simulator, symbol: str) -> tuple[Tenant, Decimal]:
    tenant = await new_tenant(first, symbol)
    signal = await entry_away_from_the_close(first, sim, tenant)
    placed = sim_entry(sim, tenant, signal)
    # At submission the order carries the signal's own levels: protected from the first moment.
    assert placed.stop_loss == Decimal(signal.stop_loss) and placed.take_profit == Decimal(signal.take_profit)
    fill = placed.avg_price
    assert fill != Decimal(signal.reference_price)
    stop, target = await expected_levels(first, fill, symbol)
    assert stop != Decimal(signal.stop_loss)

    await eventually(
        lambda: (
            (p := sim_position(sim, tenant)) is not None and (p.stop_loss, p.take_profit) == (stop, target)
        ),
        20,
        "fill-based levels on the simulator's position",
    )

    async def stored_levels() -> bool:
        rows = await first.rows(models.Position, tenant_id=tenant.tenant_id, mode="LIVE")
        return bool(rows) and (rows[0].stop_loss, rows[0].take_profit) == (stop, target)

    await eventually(stored_levels, 20, "fill-based levels on the stored position")
    order = await stored_order(first, tenant, signal)
    assert order.bracket_note == "set" and order.bracket_time is not None
    assert (order.stop_distance, order.target_distance) == (STOP_GAP, TARGET_GAP)
    # The order keeps the levels it was submitted with.
    assert order.stop_loss == Decimal(signal.stop_loss)
    assert first.execution.brackets is not None and first.execution.brackets.calls == 1
    return tenant, stop


async def test_an_unreachable_exchange_keeps_the_entry_levels_until_a_later_reconciliation(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    await fault(sim, path="/v5/position/trading-stop", kind="http", status=503)
    try:
        signal = await entry_away_from_the_close(harness, sim, tenant)
        await eventually(lambda: sim_position(sim, tenant) is not None, 20, "position opened")
        await harness.execution.accounts.reconcile(tenant.tenant_id)
        brackets = harness.execution.brackets
        assert brackets is not None and brackets.calls >= 1
        # Every attempt failed: the original levels are in force, and the entry is still to do.
        position = sim_position(sim, tenant)
        assert (position.stop_loss, position.take_profit) == (
            Decimal(signal.stop_loss),
            Decimal(signal.take_profit),
        )
        assert (await stored_order(harness, tenant, signal)).bracket_time is None
    finally:
        await clear_faults(sim)
    await harness.execution.accounts.reconcile(tenant.tenant_id)
    stop, target = await expected_levels(harness, sim_entry(sim, tenant, signal).avg_price, symbol)
    position = sim_position(sim, tenant)
    assert (position.stop_loss, position.take_profit) == (stop, target)
    assert (await stored_order(harness, tenant, signal)).bracket_note == "set"
