"""Closing a position: one reduce-only market order, placed as every order of the platform's is.

The order is stored (PENDING_SUBMIT) under an orderLinkId with the platform's prefix before it is
sent, and the `OrderPlacer` sends it: an unknown outcome (timeout, connection reset, HTTP 5xx) is
looked up by orderLinkId before anything is sent again. ClosePosition and a kill switch's
close_positions both close this way, so a closing order is never mistaken for one the client placed
by hand (`external`), and one whose answer was lost is followed rather than sent twice or forgotten.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlmodel import Session

from services.execution import convert, models
from services.execution.account_book import LINK_PREFIX
from services.execution.events import Events
from services.execution.exchange import AccountClient
from services.execution.orders import OrderPlacer, Placement, mark_accepted
from services.execution.store import Store


def closing_link(kind: str) -> str:
    """A new orderLinkId for a closing order the caller named no id for (at most 36 characters)."""
    return f"{LINK_PREFIX}{kind}-{uuid.uuid4().hex[:24]}"


@dataclass
class Closing:
    """Where a closing order stands: `order` as stored now, and what the placement learnt."""

    order: models.Order
    placement: Placement

    @property
    def reason(self) -> str:
        error = self.placement.error
        return error.message if error is not None else ""


class Closer:
    def __init__(self, store: Store, placer: OrderPlacer, events: Events) -> None:
        self.store = store
        self.placer = placer
        self.events = events

    async def close(
        self, client: AccountClient, position: models.Position, qty: Decimal, link: str, bot_id: str = ""
    ) -> Closing:
        """Store and place an order closing `qty` of `position` (the caller has checked the qty)."""
        now = convert.now()
        order = models.Order(
            id=str(uuid.uuid4()),
            tenant_id=position.tenant_id,
            bot_id=bot_id or position.bot_id,
            order_link_id=link,
            category=position.category,
            symbol=position.symbol,
            side="Sell" if position.side == "Buy" else "Buy",
            qty=qty,
            reduce_only=True,
            mode=position.mode,
            position_idx=position.position_idx,
            status="PendingSubmit",
            create_time=now,
            update_time=now,
        )
        await self.store.run(lambda s: s.add(order))
        return await self._place(client, order, maybe_sent=False)

    async def follow(self, client: AccountClient, order: models.Order) -> Closing:
        """An earlier closing order still PENDING_SUBMIT (its outcome was not known): look it up first,
        send it only if the exchange never got it."""
        return await self._place(client, order, maybe_sent=True)

    async def _place(self, client: AccountClient, order: models.Order, *, maybe_sent: bool) -> Closing:
        placement = await self.placer.place(client, order, maybe_sent=maybe_sent)
        if placement.accepted:
            found = placement.exchange_order or {}
            row = await self.store.run(mark_accepted(order.id, str(found.get("orderId", ""))))
            await self.events.order(row)
            return Closing(row, placement)
        if placement.rejected and placement.error is not None:
            message = placement.error.message

            def rejected(session: Session) -> models.Order:
                row = session.get(models.Order, order.id) or order
                row.status, row.reject_reason = "Rejected", message
                session.add(row)
                session.flush()
                session.refresh(row)
                return row

            row = await self.store.run(rejected)
            await self.events.order(row)
            return Closing(row, placement)
        return Closing(order, placement)
