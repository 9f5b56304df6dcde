"""Account state: realised PnL and fees of a sequence of trades equal an independent calculation from
the simulator's fills, to the cent; after a restart, the fills, stop-loss/take-profit exits and funding
that happened while the service was down appear with the right positions and PnL (funding never as a
fill); an order placed by hand on the exchange is stored as external and left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.bybit import BybitEnv, BybitVenue
from services.common.context import Role
from services.exchangesim.app import Simulator
from services.execution import models
from services.execution.account_book import PROTECTIVE_CREATE_TYPES
from tests.execution.helpers import (
    Harness,
    Tenant,
    admin,
    as_caller,
    entry,
    eventually,
    exit_signal,
    new_tenant,
    price,
    sim_fills,
    sim_orders,
    start_harness,
    start_sim,
)
from tests.helpers.infra import Infra

NO_CONTEXT: Any = None
CENT = Decimal("0.01")


def independent_pnl(fills: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """Realised PnL (average entry price, before fees) and fees from the simulator's own fills."""
    size = avg = realized = fees = Decimal(0)
    for fill in sorted((f for f in fills if f["execType"] == "Trade"), key=lambda f: int(f["seq"])):
        qty, px = Decimal(fill["execQty"]), Decimal(fill["execPrice"])
        fees += Decimal(fill["execFee"])
        signed = qty if fill["side"] == "Buy" else -qty
        if size and (size > 0) != (signed > 0):
            closed = min(abs(signed), abs(size))
            realized += (px - avg) * closed * (1 if size > 0 else -1)
            size += closed if size < 0 else -closed
            signed += closed if signed < 0 else -closed
            if size == 0:
                avg = Decimal(0)
        if signed:
            avg = (avg * abs(size) + px * abs(signed)) / (abs(size) + abs(signed))
            size += signed
    return realized, fees


async def pnl(harness: Harness, tenant: Tenant) -> pb.GetPnLResponse:
    as_caller(tenant.tenant_id, Role.VIEWER)
    reply: pb.GetPnLResponse = await harness.execution.servicer.GetPnL(
        pb.GetPnLRequest(mode=common.TRADING_MODE_LIVE), NO_CONTEXT
    )
    return reply


async def stored_fill_ids(harness: Harness, tenant: Tenant) -> set[str]:
    return {f.exec_id for f in await harness.rows(models.Fill, tenant_id=tenant.tenant_id)}


async def sim_trade_ids(sim: Simulator, tenant: Tenant) -> set[str]:
    return {f["execId"] for f in await sim_fills(sim, tenant) if f["execType"] == "Trade"}


async def position_size(harness: Harness, tenant: Tenant) -> Decimal:
    rows = await harness.rows(models.Position, tenant_id=tenant.tenant_id)
    return rows[0].size if rows else Decimal(0)


async def test_realised_pnl_and_fees_of_a_trade_sequence_match_the_exchange_to_the_cent(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    for side, close in ((common.SIDE_BUY, common.SIDE_SELL), (common.SIDE_SELL, common.SIDE_BUY)) * 2:
        await harness.execution.intake.handle(entry(sim, tenant, side), redelivered=False)
        await eventually(lambda: position_size(harness, tenant), 10, "position open")
        sim.clock.advance(7)  # the market moves between entry and exit
        await harness.execution.intake.handle(exit_signal(sim, tenant, close), redelivered=False)

        async def flat() -> bool:
            return await position_size(harness, tenant) == 0

        await eventually(flat, 10, "position closed")
        sim.clock.advance(3)
    fills = await sim_fills(sim, tenant)
    await eventually(
        lambda: _same(stored_fill_ids(harness, tenant), sim_trade_ids(sim, tenant)), 10, "every fill stored"
    )
    realized, fees = independent_pnl(fills)
    reply = await pnl(harness, tenant)
    assert Decimal(reply.realized_pnl).quantize(CENT) == realized.quantize(CENT)
    assert Decimal(reply.fees).quantize(CENT) == fees.quantize(CENT)
    assert Decimal(reply.net_pnl).quantize(CENT) == (realized - fees).quantize(CENT)
    # The exchange's own ledger agrees: the wallet moved by realised PnL minus fees.
    balance = Decimal((await _admin_balances(sim, tenant))["USDT"])
    assert (balance - Decimal("10000")).quantize(CENT) == (realized - fees).quantize(CENT)
    assert sum(d.fill_count for d in reply.daily) == len(fills)


async def _same(a: Any, b: Any) -> bool:
    return bool(await a == await b)


async def _admin_balances(sim: Simulator, tenant: Tenant) -> dict[str, str]:
    return dict((await admin(sim, f"accounts/{tenant.key.uid}/balances"))["balances"])


@pytest.fixture
async def funding_sim(symbol: str) -> AsyncIterator[Simulator]:
    simulator = await start_sim(symbol, funding_rate=Decimal("0.0001"))
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_what_happened_while_down_appears_after_a_restart(
    infra: Infra, funding_sim: Simulator, symbol: str
) -> None:
    sim = funding_sim
    first = await start_harness(infra, sim)
    schema = first.execution.settings.execution_db_schema
    tenant = await new_tenant(first, symbol)
    ref = price(sim, symbol)
    signal = entry(sim, tenant)
    # Wide protection first, so the market's walk cannot close the position before we say so.
    signal.stop_loss, signal.take_profit = str((ref * Decimal("0.5")).quantize(CENT)), str(ref * 2)
    await first.execution.intake.handle(signal, redelivered=False)
    await eventually(lambda: position_size(first, tenant), 10, "position open")
    await first.stop()

    # --- the service is down ---
    sim.clock.advance(9 * 60)  # past a funding time: funding is charged on the open position
    client_key = tenant.key
    session = BybitVenue(BybitEnv.SIMULATOR, sim.http_url).http(
        client_key.key, client_key.secret, max_retries=1
    )
    last = price(sim, symbol)
    await _to_thread(
        session.set_trading_stop,
        category="linear",
        symbol=symbol,
        stopLoss=str(last - Decimal("0.03")),
        takeProfit=str(last + Decimal("0.03")),
        positionIdx=0,
    )
    # A limit order placed by hand, far from the market: external, to be left alone.
    manual = await _to_thread(
        session.place_order,
        category="linear",
        symbol=symbol,
        side="Buy",
        orderType="Limit",
        qty="0.3",
        price=str((last * Decimal("0.5")).quantize(CENT)),
    )
    for _ in range(240):
        positions = [p for p in (await _admin(sim, tenant, "positions")) if Decimal(p["size"])]
        if not positions:
            break
        sim.clock.advance(1)
    assert not positions, "the stop-loss or take-profit should have closed the position"
    truth = await sim_fills(sim, tenant)
    assert any(f["execType"] == "Funding" for f in truth), "no funding happened while down"

    # --- restart on the same database ---
    second = await start_harness(
        infra, sim, EXECUTION_DB_SCHEMA=schema, EXECUTION_SIGNAL_DURABLE=f"exec-{schema}"
    )
    try:
        await eventually(
            lambda: _same(stored_fill_ids(second, tenant), sim_trade_ids(sim, tenant)), 20, "missed fills"
        )
        fills = await second.rows(models.Fill, tenant_id=tenant.tenant_id)
        funding = await second.rows(models.Funding, tenant_id=tenant.tenant_id)
        funding_ids = {f["execId"] for f in truth if f["execType"] == "Funding"}
        assert {f.exec_id for f in funding} == funding_ids
        assert not funding_ids & {f.exec_id for f in fills}, "funding stored as a fill"
        assert await position_size(second, tenant) == 0
        exits = [
            o
            for o in await second.rows(models.Order, tenant_id=tenant.tenant_id)
            if o.create_type in PROTECTIVE_CREATE_TYPES
        ]
        assert len(exits) == 1 and not exits[0].external and exits[0].bot_id == tenant.bot_id
        realized, fees = independent_pnl(truth)
        reply = await pnl(second, tenant)
        assert Decimal(reply.realized_pnl).quantize(CENT) == realized.quantize(CENT)
        assert Decimal(reply.fees).quantize(CENT) == fees.quantize(CENT)
        paid = sum(Decimal(f["execFee"]) for f in truth if f["execType"] == "Funding")
        assert Decimal(reply.funding) == -paid
        external = [o for o in await second.rows(models.Order, tenant_id=tenant.tenant_id) if o.external]
        assert [o.exchange_order_id for o in external] == [manual["result"]["orderId"]]
        still_open = [
            o for o in await sim_orders(sim, tenant) if o["orderId"] == external[0].exchange_order_id
        ]
        assert still_open[0]["orderStatus"] == "New", "an external order must be left alone"
        assert sum(second.execution.accounts.reconciler.differences.values()) > 0
    finally:
        await second.stop()


async def _to_thread(fn: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(lambda: fn(**kwargs))


async def _admin(sim: Simulator, tenant: Tenant, what: str) -> list[dict[str, Any]]:
    return list((await admin(sim, f"accounts/{tenant.key.uid}/{what}"))[what])
