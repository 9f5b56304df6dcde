"""A kill switch engaged with close_positions: the platform's open orders in scope are cancelled and
every position in scope is closed, and this is done again after each reconciliation that still finds
one open while the switch stays engaged (decision 0035).

An emergency stop is exactly when the exchange is most likely to be slow or failing; one attempt that
times out would otherwise leave the client believing they are flat. A position whose closing order is
still in flight (not yet answered, or open on the exchange) is left to that order, so a retry never
closes the same position twice. GLOBAL switches stop trading only: closing every client's positions is
not an action one administrator takes for all tenants.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import Protocol

from sqlmodel import Session, col, select

from services.execution import models
from services.execution.closing import Closer, closing_link
from services.execution.exchange import AccountClient, ExchangeError
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.flatten")
Ord, P, K = models.Order, models.Position, models.KillSwitchRow
OPEN = ("PendingSubmit", "Created", "New", "PartiallyFilled", "Untriggered")


class AccountSource(Protocol):
    """One mode's accounts (accounts.Accounts), as far as flattening needs them."""

    @property
    def tenants(self) -> Mapping[str, object]: ...

    async def ensure_ready(self, tenant_id: str) -> AccountClient | None: ...


class Flattener:
    def __init__(self, store: Store, closer: Closer, accounts: Mapping[str, AccountSource | None]) -> None:
        self.store = store
        self.closer = closer
        self.accounts = accounts  # by mode: LIVE, PAPER
        # One flattening of an account at a time (the switch's own and a reconciliation's), so each
        # sees the other's closing orders as in flight.
        self._flattening: dict[tuple[str, str], asyncio.Lock] = {}

    async def engaged(self, tenant_id: str, bot_id: str = "") -> None:
        """A switch was just engaged with close_positions: flatten its scope on the LIVE and the PAPER
        account alike (one account's failure is logged and does not spare the other)."""
        for mode, accounts in self.accounts.items():
            if accounts is None:
                continue
            try:
                orders, positions, _ = await self._scope(tenant_id, mode, bot_id)
                if not orders and not positions and tenant_id not in accounts.tenants:
                    continue  # never traded on this account: in particular, no paper account is opened
                client = await accounts.ensure_ready(tenant_id)  # reconciled: the scope as it left it
                if client is not None:
                    await self.flatten(client, tenant_id, mode, bot_id)
            except Exception:
                log.exception(
                    "closing positions after a kill switch failed",
                    extra={"tenant_id": tenant_id, "mode": mode},
                )

    async def flatten(self, client: AccountClient, tenant_id: str, mode: str, bot_id: str = "") -> None:
        """Cancel the platform's open orders and close the positions of the tenant's account of `mode`
        (or of one bot). Failures are logged; the next reconciliation tries again if a switch asks."""
        async with self._flattening.setdefault((tenant_id, mode), asyncio.Lock()):
            await self._flatten(client, tenant_id, mode, bot_id)

    async def _scope(
        self, tenant_id: str, mode: str, bot_id: str
    ) -> tuple[list[models.Order], list[models.Position], set[tuple[str, str]]]:
        return await self.store.run(
            functools.partial(in_scope, tenant_id=tenant_id, mode=mode, bot_id=bot_id)
        )

    async def _flatten(self, client: AccountClient, tenant_id: str, mode: str, bot_id: str) -> None:
        orders, positions, closing = await self._scope(tenant_id, mode, bot_id)
        for order in orders:
            try:
                await client.call(
                    "cancel_order",
                    category=order.category,
                    symbol=order.symbol,
                    orderId=order.exchange_order_id,
                )
            except ExchangeError as error:  # e.g. filled meanwhile: the positions are closed regardless
                log.warning(
                    "a kill switch could not cancel an order: %s",
                    error.message,
                    extra={"tenant_id": tenant_id, "mode": mode, "order_id": order.id},
                )
        for position in positions:
            if (position.category, position.symbol) in closing:
                continue  # its closing order is still on its way: never a second one
            result = await self.closer.close(client, position, position.size, closing_link("kill"))
            if not result.placement.accepted:
                log.error(
                    "a kill switch's closing order was not accepted",
                    extra={
                        "tenant_id": tenant_id,
                        "mode": mode,
                        "symbol": position.symbol,
                        "order_link_id": result.order.order_link_id,
                        "error": result.reason or "outcome unknown",
                    },
                )

    async def settle(self, tenant_id: str, mode: str, client: AccountClient) -> None:
        """After a reconciliation: flatten again what an engaged close_positions switch still finds open."""

        def wanted(session: Session) -> list[str]:
            q = select(K.bot_id).where(
                K.tenant_id == tenant_id, K.engaged, K.close_positions, col(K.scope).in_(("TENANT", "BOT"))
            )
            return list(session.exec(q).all())

        scopes = await self.store.run(wanted)
        if "" in scopes:
            scopes = [""]  # the tenant's switch covers every bot's
        for bot_id in scopes:
            _, positions, closing = await self._scope(tenant_id, mode, bot_id)
            if any((p.category, p.symbol) not in closing for p in positions):
                log.warning(
                    "positions still open under a kill switch; closing them again",
                    extra={"tenant_id": tenant_id, "mode": mode, "bot_id": bot_id},
                )
                await self.flatten(client, tenant_id, mode, bot_id)


def in_scope(
    session: Session, tenant_id: str, mode: str, bot_id: str
) -> tuple[list[models.Order], list[models.Position], set[tuple[str, str]]]:
    """The platform's open orders to cancel, the open positions, and the (category, symbol) of each
    closing order still in flight, of the account of `mode` (and of one bot, if given)."""
    orders = select(Ord).where(
        Ord.tenant_id == tenant_id, Ord.mode == mode, col(Ord.status).in_(OPEN), col(Ord.external).is_(False)
    )
    positions = select(P).where(P.tenant_id == tenant_id, P.size != 0, P.mode == mode)
    if bot_id:
        orders, positions = orders.where(Ord.bot_id == bot_id), positions.where(P.bot_id == bot_id)
    open_orders = list(session.exec(orders).all())
    closing = {(o.category, o.symbol) for o in open_orders if _closing(o)}
    cancel = [o for o in open_orders if not _closing(o) and o.exchange_order_id]
    return cancel, list(session.exec(positions).all()), closing


def _closing(order: models.Order) -> bool:
    """A closing order of the platform's (ClosePosition's or a kill switch's): reduce-only, no signal."""
    return order.reduce_only and not order.signal_id
