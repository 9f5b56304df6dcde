"""A signal becomes exactly one order, checked against the simulator's own records: a plain entry with
its exchange-side stop-loss and take-profit, an accepted order whose reply times out, 10006 and HTTP
5xx answers, a duplicate orderLinkId, and the same signal delivered twice."""

from __future__ import annotations

from decimal import Decimal

from services.exchangesim.app import Simulator
from services.execution import models
from services.execution.orders import link_id_for_signal
from tests.execution.helpers import (
    Harness,
    entry,
    eventually,
    exit_signal,
    fault,
    new_tenant,
    outcome,
    publish,
    sim_orders,
)


async def test_entry_becomes_one_order_with_exchange_stop_loss_and_take_profit(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    signal = entry(sim, tenant)
    await publish(harness.bus, signal)
    result = await outcome(harness, tenant, signal.id)
    assert result.outcome == "ORDERED"
    orders = await sim_orders(sim, tenant)
    assert len(orders) == 1
    placed = orders[0]
    assert placed["orderLinkId"] == link_id_for_signal(signal.id)
    assert Decimal(placed["stopLoss"]) == Decimal(signal.stop_loss)
    assert Decimal(placed["takeProfit"]) == Decimal(signal.take_profit)
    # Sized per the strategy: 1 % of 1000 over the stop distance, rounded down to the qty step.
    distance = Decimal(signal.reference_price) - Decimal(signal.stop_loss)
    assert Decimal(placed["qty"]) <= Decimal("1000") * Decimal("0.01") / distance
    # The private stream brings the fill and the position.
    fills = await eventually(lambda: harness.rows(models.Fill, tenant_id=tenant.tenant_id), 10, "fill")
    assert sum(f.exec_qty for f in fills) == Decimal(placed["qty"])
    stored = (await harness.rows(models.Order, tenant_id=tenant.tenant_id))[0]
    await eventually(lambda: _status(harness, stored.id, "Filled"), 10, "order Filled from the stream")


async def _status(harness: Harness, order_id: str, status: str) -> bool:
    rows = await harness.rows(models.Order, id=order_id)
    return bool(rows) and rows[0].status == status


async def _one_order_despite(harness: Harness, sim: Simulator, symbol: str, **rule: object) -> None:
    tenant = await new_tenant(harness, symbol)
    await fault(sim, path="/v5/order/create", **rule)
    signal = entry(sim, tenant)
    await publish(harness.bus, signal)
    result = await outcome(harness, tenant, signal.id, within=30)
    assert result.outcome == "ORDERED"
    orders = await sim_orders(sim, tenant)
    assert [o["orderLinkId"] for o in orders] == [link_id_for_signal(signal.id)]
    stored = await harness.rows(models.Order, tenant_id=tenant.tenant_id)
    assert len(stored) == 1 and stored[0].exchange_order_id == orders[0]["orderId"]


async def test_accepted_order_whose_reply_times_out_is_adopted_not_placed_again(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    await _one_order_despite(harness, sim, symbol, kind="accept_timeout", delay_ms=2500, count=1)
    assert harness.execution.servicer.deps.placer.adopted >= 1


async def test_rate_limit_answer_waits_for_the_reset_and_places_once(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    await _one_order_despite(harness, sim, symbol, kind="error", code=10006, count=2)


async def test_http_5xx_looks_up_first_then_places_once(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    await _one_order_despite(harness, sim, symbol, kind="http", status=502, count=2)


async def test_server_error_code_is_an_unknown_outcome(harness: Harness, sim: Simulator, symbol: str) -> None:
    await _one_order_despite(harness, sim, symbol, kind="error", code=10016, count=1)


async def test_same_signal_twice_is_one_order_and_a_duplicate_event(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    signal = entry(sim, tenant)
    await harness.execution.intake.handle(signal, redelivered=False)
    await harness.execution.intake.handle(signal, redelivered=False)
    assert len(await sim_orders(sim, tenant)) == 1
    events = await harness.rows(models.RiskEventRow, tenant_id=tenant.tenant_id)
    assert [e.reason for e in events] == ["RISK_REASON_DUPLICATE_SIGNAL"]


async def test_order_the_exchange_already_has_is_adopted_on_duplicate_answer(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    """The exchange has the orderLinkId (placed by an earlier attempt we never heard back from)."""
    tenant = await new_tenant(harness, symbol)
    signal = entry(sim, tenant)
    client = await harness.execution.accounts.client(tenant.tenant_id)
    assert client is not None
    await client.call(
        "place_order",
        category="linear",
        symbol=symbol,
        side="Buy",
        orderType="Market",
        qty="0.1",
        orderLinkId=link_id_for_signal(signal.id),
    )
    await harness.execution.intake.handle(signal, redelivered=False)
    assert len(await sim_orders(sim, tenant)) == 1
    result = await outcome(harness, tenant, signal.id)
    assert result.outcome == "ORDERED"


async def test_exit_closes_the_whole_position_reduce_only(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    await harness.execution.intake.handle(entry(sim, tenant), redelivered=False)
    await eventually(lambda: _position_size(harness, tenant.tenant_id), 10, "position from the stream")
    await harness.execution.intake.handle(exit_signal(sim, tenant), redelivered=False)
    orders = await sim_orders(sim, tenant)
    assert len(orders) == 2 and orders[1]["reduceOnly"] is True
    assert orders[1]["qty"] == orders[0]["qty"]
    await eventually(lambda: _flat(harness, tenant.tenant_id), 10, "flat position")


async def _position_size(harness: Harness, tenant_id: str) -> Decimal:
    rows = await harness.rows(models.Position, tenant_id=tenant_id)
    return rows[0].size if rows else Decimal(0)


async def _flat(harness: Harness, tenant_id: str) -> bool:
    rows = await harness.rows(models.Position, tenant_id=tenant_id)
    return bool(rows) and rows[0].size == 0


async def test_stop_and_target_off_the_tick_grid_are_rounded_toward_the_entry(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    """Strategies compute levels in floating point; Bybit refuses prices off the tick grid (10001)."""
    tenant = await new_tenant(harness, symbol)
    exact = entry(sim, tenant)
    stop, take = (
        Decimal(exact.stop_loss) - Decimal("0.004321"),
        Decimal(exact.take_profit) + Decimal("0.006789"),
    )
    signal = entry(sim, tenant)
    signal.stop_loss, signal.take_profit = str(stop), str(take)
    await publish(harness.bus, signal)
    result = await outcome(harness, tenant, signal.id)
    assert result.outcome == "ORDERED", result.reason
    (placed,) = await sim_orders(sim, tenant)
    tick = Decimal("0.01")
    assert Decimal(placed["stopLoss"]) == (stop / tick).to_integral_value(rounding="ROUND_CEILING") * tick
    assert Decimal(placed["takeProfit"]) == (take / tick).to_integral_value(rounding="ROUND_FLOOR") * tick
