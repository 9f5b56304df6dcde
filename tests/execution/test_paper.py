"""Paper trading: a PAPER bot's signals trade on a simulator account execution opens for the tenant
itself (no exchange keys from the client), its orders, fills, positions and PnL are kept under mode
PAPER, and the tenant's LIVE account and figures are untouched."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import hvac
import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.context import Role
from services.common.vault import SecretStore
from services.exchangesim.app import Simulator
from services.execution import models
from services.execution.paper import paper_secret_path
from tests.execution.helpers import (
    Harness,
    as_caller,
    bot_event,
    entry,
    eventually,
    exit_signal,
    new_tenant,
    outcome,
    paper_bot,
    paper_key,
    paper_uid,
    publish,
    sim_orders,
    start_harness,
    unique,
)
from tests.execution.test_account_state import independent_pnl
from tests.helpers.infra import Infra

PAPER, LIVE = common.TRADING_MODE_PAPER, common.TRADING_MODE_LIVE
NO_CONTEXT: Any = None
CENT = Decimal("0.01")


async def rows(harness: Harness, model: type[Any], tenant_id: str, mode: str) -> list[Any]:
    return await harness.rows(model, tenant_id=tenant_id, mode=mode)


async def pnl(harness: Harness, tenant_id: str, mode: int) -> pb.GetPnLResponse:
    as_caller(tenant_id, Role.VIEWER)
    request = pb.GetPnLRequest(mode=mode)
    reply: pb.GetPnLResponse = await harness.execution.servicer.GetPnL(request, NO_CONTEXT)
    return reply


async def test_a_paper_signal_trades_on_the_tenants_paper_account_and_live_figures_stay_untouched(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    live = await new_tenant(harness, symbol)  # the tenant's own LIVE keys and a LIVE bot
    bot = await paper_bot(harness, live.tenant_id, symbol)
    tenant = live.tenant_id
    await eventually(
        lambda: (s := harness.execution.paper.tenants.get(tenant)) is not None and s.reconciled,
        20,
        "paper account opened and reconciled",
    )
    uid = paper_uid(harness, sim, tenant)
    assert uid != live.key.uid
    # Opened with the configured starting balance; execution saw it under PAPER only.
    wallets = await rows(harness, models.WalletSnapshot, tenant, "PAPER")
    assert wallets and wallets[-1].total_wallet_balance == Decimal("10000")

    opening = entry(sim, bot, mode=PAPER)
    await publish(harness.bus, opening)
    done = await outcome(harness, bot, opening.id)
    assert done.outcome == "ORDERED", done.reason
    on_paper = list(sim.venue.accounts.by_uid[uid].orders.values())
    assert [o.order_link_id for o in on_paper] == [f"tb-{opening.id}"]
    assert await sim_orders(sim, live) == []  # nothing reached the LIVE account
    [order] = await rows(harness, models.Order, tenant, "PAPER")
    assert order.signal_id == opening.id and order.bot_id == bot.bot_id

    async def paper_position() -> Decimal:
        found = await rows(harness, models.Position, tenant, "PAPER")
        return found[0].size if found else Decimal(0)

    await eventually(paper_position, 15, "PAPER position open")
    sim.clock.advance(5)
    closing = exit_signal(sim, bot, mode=PAPER)
    await publish(harness.bus, closing)
    assert (await outcome(harness, bot, closing.id)).outcome == "ORDERED"

    async def flat() -> bool:
        return await paper_position() == 0

    await eventually(flat, 15, "PAPER position closed")
    fills = await _fills(sim, uid)  # the simulator's own fills are the independent truth
    await eventually(
        lambda: _count(harness, tenant, len([f for f in fills if f["execType"] == "Trade"])),
        15,
        "every PAPER fill stored",
    )
    realized, fees = independent_pnl(fills)
    paper = await pnl(harness, tenant, PAPER)
    assert Decimal(paper.realized_pnl).quantize(CENT) == realized.quantize(CENT)
    assert Decimal(paper.fees).quantize(CENT) == fees.quantize(CENT) > 0
    # LIVE: no orders, fills or positions, zero PnL.
    assert await rows(harness, models.Order, tenant, "LIVE") == []
    assert await rows(harness, models.Fill, tenant, "LIVE") == []
    assert all(p.size == 0 for p in await rows(harness, models.Position, tenant, "LIVE"))
    figures = await pnl(harness, tenant, LIVE)
    assert Decimal(figures.realized_pnl) == 0 and Decimal(figures.fees) == 0


async def _fills(sim: Simulator, uid: int) -> list[dict[str, Any]]:
    from tests.execution.helpers import admin

    return list((await admin(sim, f"accounts/{uid}/fills"))["fills"])


async def _count(harness: Harness, tenant_id: str, expected: int) -> bool:
    return len(await rows(harness, models.Fill, tenant_id, "PAPER")) == expected


async def test_a_tenant_without_exchange_keys_paper_trades(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = unique("t-")
    bot = await paper_bot(harness, tenant, symbol)
    signal = entry(sim, bot, mode=PAPER)
    await publish(harness.bus, signal)
    done = await outcome(harness, bot, signal.id)
    assert done.outcome == "ORDERED", done.reason
    uid = paper_uid(harness, sim, tenant)
    assert len(sim.venue.accounts.by_uid[uid].orders) == 1
    key = paper_key(harness.infra, tenant)
    # The next signal trades on the same account: one paper account per tenant.
    closing = exit_signal(sim, bot, mode=PAPER)

    async def opened() -> bool:
        return any(p.size for p in await rows(harness, models.Position, tenant, "PAPER"))

    await eventually(opened, 15, "PAPER position stored")
    await publish(harness.bus, closing)
    assert (await outcome(harness, bot, closing.id)).outcome == "ORDERED"
    assert paper_key(harness.infra, tenant) == key
    assert len(sim.venue.accounts.by_uid[uid].orders) == 2


async def test_a_live_signal_of_a_paper_bot_is_skipped_and_reaches_no_account(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    live = await new_tenant(harness, symbol)
    bot = await paper_bot(harness, live.tenant_id, symbol)
    signal = entry(sim, bot, mode=LIVE)
    await publish(harness.bus, signal)
    done = await outcome(harness, bot, signal.id)
    assert done.outcome == "SKIPPED"
    events = await harness.rows(models.RiskEventRow, tenant_id=live.tenant_id, signal_id=signal.id)
    assert "trades PAPER, the signal says LIVE" in events[0].message
    assert await sim_orders(sim, live) == []
    assert await rows(harness, models.Order, live.tenant_id, "PAPER") == []


def test_only_execution_can_read_or_write_paper_keys(infra: Infra) -> None:
    path = paper_secret_path(unique("t-"))
    own = SecretStore(hvac.Client(url=infra.vault.addr, token=infra.vault.service_tokens["execution"]))
    own.put(path, {"api_key": "k", "api_secret": "s"})
    assert own.read(path) == {"api_key": "k", "api_secret": "s"}
    for service in ("tenants", "strategy", "dashboard"):
        other = SecretStore(hvac.Client(url=infra.vault.addr, token=infra.vault.service_tokens[service]))
        with pytest.raises(hvac.exceptions.Forbidden):
            other.read(path)
        with pytest.raises(hvac.exceptions.Forbidden):
            other.put(path, {"api_key": "x", "api_secret": "y"})


async def test_a_paper_account_the_simulator_forgot_is_opened_again(
    infra: Infra, sim: Simulator, symbol: str
) -> None:
    """The simulator keeps accounts in memory while Vault keeps the paper key: after the simulator
    restarts (`make run` again), the next start of execution opens a new paper account."""
    tenant = unique("t-")
    first = await start_harness(infra, sim)
    try:
        bot = await paper_bot(first, tenant, symbol)
        await eventually(lambda: paper_key(infra, tenant), 20, "paper key stored")
        old_uid = paper_uid(first, sim, tenant)
    finally:
        await first.stop()
    forgotten = str((paper_key(infra, tenant) or {})["api_key"])
    del sim.venue.accounts.keys[forgotten]  # what a restarted simulator knows of it: nothing
    second = await start_harness(infra, sim)
    try:
        await second.execution.tenant_events.on_bot(
            bot_event(bot, capital="1000", risk_per_trade=0.01, mode=PAPER)
        )
        signal = entry(sim, bot, mode=PAPER)
        await publish(second.bus, signal)
        done = await outcome(second, bot, signal.id)
        assert done.outcome == "ORDERED", done.reason
        new_uid = paper_uid(second, sim, tenant)
        assert new_uid != old_uid
        assert [o.order_link_id for o in sim.venue.accounts.by_uid[new_uid].orders.values()] == [
            f"tb-{signal.id}"
        ]
    finally:
        await second.stop()
