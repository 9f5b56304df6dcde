"""Reconciliation: the stored account corrected to the exchange's truth, at start (before the tenant's
first order) and periodically (what a dropped stream may have lost).

Order of work: executions since the last one known (fills, stop-loss/take-profit exits, funding),
then orders still open here or there, then positions and the wallet. Orders the platform did not
place are stored as external and left alone. A closing order (no signal) that no placement attempt
resolved is looked up by its orderLinkId and, when the exchange never got it, marked Rejected.
Every difference is logged, counted by kind and, for positions, recorded as a risk event.
"""

from __future__ import annotations

import collections
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select
from tradebot.execution.v1 import events_pb2 as ev

from services.execution import account_book, convert, models, risk
from services.execution.account_book import Changes
from services.execution.exchange import AccountClient
from services.execution.orders import by_link
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.reconcile")
CATEGORIES = ("linear",)
OVERLAP_MS = 60_000  # re-read a minute before the last known execution: repeats are dropped by execId
NEVER_SENT = "never reached the exchange: it has no order with this orderLinkId"
Ord = models.Order


class Reconciler:
    def __init__(self, store: Store, unsent_after_seconds: float = 120.0) -> None:
        self.store = store
        # A closing order still PENDING_SUBMIT this long after it was stored has outlived every
        # attempt to place it (the order deadline plus one call's timeout): it is settled here.
        self.unsent_after = timedelta(seconds=unsent_after_seconds)
        self.differences: collections.Counter[str] = collections.Counter()

    async def run(self, tenant_id: str, mode: str, client: AccountClient) -> Changes:
        account = await self.store.run(lambda s: s.get(models.Account, (tenant_id, mode)))
        since = account.last_exec_time_ms if account is not None else 0
        executions: list[dict[str, Any]] = []
        for category in CATEGORIES:
            params: dict[str, Any] = {"category": category, "limit": 100}
            if since:
                params["startTime"] = max(since - OVERLAP_MS, 0)
            executions += [
                {**row, "category": category} for row in await client.pages("get_executions", **params)
            ]
        open_orders = []
        for category in CATEGORIES:
            rows = await client.pages("get_open_orders", category=category, settleCoin="USDT", limit=50)
            open_orders += [{**row, "category": category} for row in rows]
        stale = await self.store.run(lambda s: _unsettled_orders(s, tenant_id, mode))
        settled = []
        for order in stale:
            result = await client.call(
                "get_order_history", category=order.category, orderId=order.exchange_order_id
            )
            settled += [{**row, "category": order.category} for row in result.get("list", [])]
        never_sent = []
        cutoff = convert.now() - self.unsent_after
        open_links = {str(row.get("orderLinkId", "")) for row in open_orders}
        for order in await self.store.run(lambda s: _unsent_closings(s, tenant_id, mode, cutoff)):
            if order.order_link_id in open_links:
                continue  # open on the exchange: applied with the open orders
            rows = await by_link(client, "get_order_history", order)
            settled += [{**row, "category": order.category} for row in rows]
            if not rows:
                never_sent.append(order.id)
        positions = await client.pages("get_positions", category="linear", settleCoin="USDT", limit=200)
        wallet = await client.call("get_wallet_balance", accountType="UNIFIED")
        orders = open_orders + settled

        def apply(session: Session) -> Changes:
            changes = self._apply(session, tenant_id, mode, executions, orders, positions, wallet)
            self._never_sent(session, tenant_id, mode, never_sent, changes)
            return changes

        return await self.store.run(apply)

    def _never_sent(
        self, session: Session, tenant_id: str, mode: str, order_ids: list[str], changes: Changes
    ) -> None:
        for order_id in order_ids:
            order = session.get(models.Order, order_id)
            if order is None or order.status != "PendingSubmit":
                continue  # settled meanwhile (its stream message, or a ClosePosition repeat)
            order.status, order.reject_reason = "Rejected", NEVER_SENT
            order.revision += 1
            order.update_time = convert.now()
            session.add(order)
            changes.orders.append(order)
            self.differences["closing_order_never_sent"] += 1
            log.warning(
                "a closing order never reached the exchange",
                extra={"tenant_id": tenant_id, "mode": mode, "order_link_id": order.order_link_id},
            )

    def _apply(
        self,
        session: Session,
        tenant_id: str,
        mode: str,
        executions: list[dict[str, Any]],
        orders: list[dict[str, Any]],
        positions: list[dict[str, Any]],
        wallet: dict[str, Any],
    ) -> Changes:
        changes = Changes()
        found: collections.Counter[str] = collections.Counter()
        executions.sort(key=lambda r: int(str(r.get("seq") or 0)))
        last_ms = 0
        for row in executions:
            before = len(changes.fills)
            known = session.get(models.Fill, (tenant_id, str(row.get("execId", "")))) or session.get(
                models.Funding, (tenant_id, str(row.get("execId", "")))
            )
            account_book.apply_execution(session, tenant_id, mode, row, changes)
            if known is None:
                found["missed_execution"] += (
                    1 if len(changes.fills) > before or row.get("execType") == "Funding" else 0
                )
            last_ms = max(last_ms, int(str(row.get("execTime") or 0)))
        for row in orders:
            existing = account_book.find_order(
                session, tenant_id, mode, str(row.get("orderId", "")), str(row.get("orderLinkId", ""))
            )
            if existing is None:
                found["unknown_order"] += 1
            elif existing.status != row.get("orderStatus"):
                found["order_status"] += 1
            account_book.apply_order(session, tenant_id, mode, row, changes)
        on_exchange = set()
        for raw in positions:
            pos = account_book.apply_position(
                session, tenant_id, mode, {**raw, "category": "linear"}, changes
            )
            on_exchange.add(pos.symbol)
            if pos.size != abs(pos.book_size):
                found["position_size"] += 1
                changes.risk.append(
                    risk.new_event(
                        tenant_id=tenant_id,
                        kind=ev.RISK_EVENT_KIND_RECONCILIATION_MISMATCH,
                        reason=ev.RISK_REASON_UNSPECIFIED,
                        message=f"{pos.symbol}: exchange position {pos.size} differs from"
                        f" the fills' {abs(pos.book_size)}",
                        bot_id=pos.bot_id,
                        category="linear",
                        symbol=pos.symbol,
                        mode=mode,
                        details={
                            "exchange_size": convert.text(pos.size),
                            "book_size": convert.text(pos.book_size),
                        },
                    )
                )
        P = models.Position
        for pos in session.exec(
            select(P).where(P.tenant_id == tenant_id, P.mode == mode, P.category == "linear", P.size != 0)
        ):
            if pos.symbol not in on_exchange:
                found["position_gone"] += 1
                account_book.apply_position(
                    session, tenant_id, mode, {"symbol": pos.symbol, "size": "0"}, changes
                )
        for row in wallet.get("list", [])[:1]:
            account_book.apply_wallet(session, tenant_id, mode, row, changes)
        for event in changes.risk:
            session.add(event)
        account = session.get(models.Account, (tenant_id, mode)) or models.Account(
            tenant_id=tenant_id, mode=mode
        )
        account.last_reconcile_time = convert.now()
        account.last_exec_time_ms = max(account.last_exec_time_ms, last_ms)
        session.add(account)
        for kind, count in found.items():
            if count:
                self.differences[kind] += count
                log.warning(
                    "reconciliation corrected %d %s",
                    count,
                    kind,
                    extra={"tenant_id": tenant_id, "mode": mode},
                )
        return changes


def _unsettled_orders(session: Session, tenant_id: str, mode: str) -> list[models.Order]:
    """Orders we believe open that the exchange may have finished while we were away."""
    open_here = col(Ord.status).in_(("Created", "New", "PartiallyFilled", "Untriggered"))
    return _orders(session, tenant_id, mode, Ord.exchange_order_id != "", open_here)


def _unsent_closings(session: Session, tenant_id: str, mode: str, cutoff: datetime) -> list[models.Order]:
    """Closing orders (no signal: a signal's order is settled by its redelivery, intake.py) stored
    before `cutoff` that the exchange never acknowledged."""
    return _orders(
        session,
        tenant_id,
        mode,
        Ord.status == "PendingSubmit",
        Ord.signal_id == "",
        Ord.exchange_order_id == "",
        Ord.create_time < cutoff,
    )


def _orders(session: Session, tenant_id: str, mode: str, *conditions: Any) -> list[models.Order]:
    query = select(Ord).where(Ord.tenant_id == tenant_id, Ord.mode == mode, *conditions)
    return list(session.exec(query).all())


def last_reconcile(session: Session, tenant_id: str, mode: str) -> datetime | None:
    account = session.get(models.Account, (tenant_id, mode))
    return account.last_reconcile_time if account is not None else None
