"""Crash-only: the service is SIGKILLed after sending an order and before acknowledging its signal; the
restarted process gets the signal again, looks the order up by orderLinkId and adopts it. The
simulator's ground truth shows exactly one order. The bot arrives over NATS as strategy publishes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import Session, select

from services.common import bus as bus_module
from services.common.db import make_engine
from services.exchangesim.app import Simulator
from services.execution import models
from services.execution.orders import link_id_for_signal
from tests.execution.helpers import (
    ExecutionProcess,
    Tenant,
    bot_event,
    entry,
    eventually,
    fault,
    publish,
    settings_env,
    sim_orders,
    store_keys,
    unique,
)
from tests.helpers.infra import Infra


async def test_killed_between_send_and_ack_places_exactly_one_order(
    infra: Infra, sim: Simulator, symbol: str, tmp_path: Path
) -> None:
    tenant = Tenant(unique("t-"), unique("b-"), sim.create_account({"USDT": "10000"}), symbol)
    await asyncio.to_thread(store_keys, infra, tenant.tenant_id, tenant.key)
    schema = unique("ex_")
    env = settings_env(
        infra,
        sim.http_url,
        schema,
        EXECUTION_SIGNAL_SUBJECT=f"sig.{tenant.tenant_id}.>",
        EXECUTION_SIGNAL_ACK_WAIT_SECONDS="3",
        EXECUTION_ORDER_TIMEOUT_SECONDS="20",
    )
    service = ExecutionProcess(env, tmp_path)
    await service.start()
    engine = make_engine(infra.postgres.url, schema)
    bus = await bus_module.connect(infra.nats.url, "strategy-test")
    try:
        event = bot_event(tenant, capital="1000", risk_per_trade=0.01)
        await bus.publish(f"bot.lifecycle.{tenant.tenant_id}.{tenant.bot_id}", event, event.event_id)

        def reconciled() -> bool:
            with Session(engine) as session:
                account = session.get(models.Account, (tenant.tenant_id, "LIVE"))
                return account is not None and account.last_reconcile_time is not None

        await eventually(
            lambda: asyncio.to_thread(reconciled), 30, "the tenant reconciled after its bot arrived"
        )
        # The exchange takes the order at once but holds its reply for 15 s.
        await fault(sim, kind="accept_timeout", delay_ms=15_000, count=1, path="/v5/order/create")
        signal = entry(sim, tenant)
        await publish(bus, signal)
        await eventually(lambda: sim_orders(sim, tenant), 20, "the order on the exchange")
        service.kill()

        def stored() -> tuple[list[models.Order], list[models.SignalOutcome]]:
            with Session(engine) as session:
                orders = list(session.exec(select(models.Order)).all())
                outcomes = list(session.exec(select(models.SignalOutcome)).all())
                return orders, outcomes

        orders, outcomes = await asyncio.to_thread(stored)
        # Stored before it was sent (the private stream may already have moved it on); no outcome yet.
        assert len(orders) == 1 and outcomes == []

        await service.start()

        def adopted() -> bool:
            _, outcomes = stored()
            return bool(outcomes) and outcomes[0].outcome == "ORDERED"

        await eventually(lambda: asyncio.to_thread(adopted), 30, "the signal's outcome after the restart")
        truth = await sim_orders(sim, tenant)
        assert [o["orderLinkId"] for o in truth] == [link_id_for_signal(signal.id)]
        orders, _ = await asyncio.to_thread(stored)
        assert len(orders) == 1 and orders[0].exchange_order_id == truth[0]["orderId"]
    finally:
        service.stop()
        await bus.drain()
        engine.dispose()
