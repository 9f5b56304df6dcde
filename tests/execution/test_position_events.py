"""Position events of an entry: execution publishes a linear position as the exchange reports it, so the
first event after an entry is the open position, never a flat one for the execution message that
arrives before the exchange's position message (strategy had to ignore those, docs/decisions/0057)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nats.aio.msg import Msg
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as ev

from services.exchangesim.app import Simulator
from services.execution import models
from tests.execution.helpers import Harness, entry, eventually, exit_signal, new_tenant


async def test_an_entry_publishes_its_position_open_and_an_exit_flat_never_flat_first(
    harness: Harness, sim: Simulator, symbol: str
) -> None:
    tenant = await new_tenant(harness, symbol)
    published: list[ev.Position] = []

    async def collect(msg: Msg) -> None:
        published.append(ev.PositionEvent.FromString(msg.data).position)

    subscription = await harness.bus.client.subscribe(f"exec.position.{tenant.tenant_id}", cb=collect)
    try:
        await harness.execution.intake.handle(entry(sim, tenant, common.SIDE_BUY), redelivered=False)
        await eventually(lambda: any(p.size not in ("", "0") for p in published), 15, "open position event")
        stored = await harness.rows(models.Fill, tenant_id=tenant.tenant_id)
        assert stored, "the entry's fill is stored"
        assert published[0].side == common.SIDE_BUY and Decimal(published[0].size) > 0, (
            "the first position event of an entry is the open position, not a flat one: "
            f"{[(p.side, p.size) for p in published]}"
        )
        opened = len(published)

        await harness.execution.intake.handle(exit_signal(sim, tenant, common.SIDE_SELL), redelivered=False)
        await eventually(lambda: any(p.size in ("", "0") for p in published[opened:]), 15, "flat event")
        await asyncio.sleep(0.5)  # anything published for the exit's messages has arrived by now
        sizes = [Decimal(p.size or "0") for p in published]
        assert all(size > 0 for size in sizes[:opened]), sizes
        assert sizes[-1] == 0, f"the last event after the exit is the flat position: {sizes}"
    finally:
        await subscription.unsubscribe()
