"""Placing one order exactly once: the orderLinkId is derived from the signal id, the order is stored as
PENDING_SUBMIT before it is sent, and whenever the outcome of a send is unknown (timeout, connection
reset, HTTP 5xx, 10016) the order is looked up by orderLinkId before anything else. A duplicate answer
(110072) means the order exists: look it up and adopt it, never place another. 10006 waits for the
key's reset time (budget.py) and sends again, which is safe because nothing was executed.

The loop ends with the order accepted, definitely rejected, or unresolved at the deadline; an
unresolved order stays PENDING_SUBMIT and its signal is not acknowledged, so the redelivery (or the
next start) resumes with the lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text as sql

from services.common.db import columns, unnest_insert
from services.execution import convert, models
from services.execution.account_book import LINK_PREFIX
from services.execution.exchange import AccountClient, ExchangeError
from services.execution.risk import CircuitBreaker, account_key

log = logging.getLogger("tradebot.execution.orders")
TIMESTAMP_ERROR = 10002


def link_id_for_signal(signal_id: str) -> str:
    """orderLinkId of a signal's order: at most 3 + 32 = 35 characters of [A-Za-z0-9_-]."""
    return LINK_PREFIX + signal_id


def order_params(order: models.Order) -> dict[str, Any]:
    params: dict[str, Any] = {
        "category": order.category,
        "symbol": order.symbol,
        "side": order.side,
        "orderType": order.order_type,
        "qty": convert.text(order.qty),
        "orderLinkId": order.order_link_id,
    }
    if order.category == "linear":
        params["positionIdx"] = order.position_idx
    if order.order_type == "Limit":
        params["price"] = convert.text(order.price)
        params["timeInForce"] = order.time_in_force
    if order.reduce_only:
        params["reduceOnly"] = True
    if order.take_profit or order.stop_loss:
        params["tpslMode"] = "Full"
        if order.take_profit:
            params["takeProfit"] = convert.text(order.take_profit)
        if order.stop_loss:
            params["stopLoss"] = convert.text(order.stop_loss)
    return params


@dataclass
class Placement:
    accepted: bool
    exchange_order: dict[str, Any] | None = None
    error: ExchangeError | None = None

    @property
    def rejected(self) -> bool:
        return not self.accepted and self.error is not None and not self.error.unknown


class OrderPlacer:
    def __init__(self, breaker: CircuitBreaker, deadline_seconds: float) -> None:
        self.breaker = breaker
        self.deadline_seconds = deadline_seconds
        self.lookups = 0
        self.adopted = 0

    async def lookup(self, client: AccountClient, order: models.Order) -> dict[str, Any] | None:
        """The exchange's record of the order with this orderLinkId: open orders first, then history."""
        self.lookups += 1
        for method in ("get_open_orders", "get_order_history"):
            rows = await by_link(client, method, order)
            if rows:
                return rows[0]
        return None

    async def place(self, client: AccountClient, order: models.Order, *, maybe_sent: bool) -> Placement:
        """Send `order` (already stored) until its fate is known or the deadline passes.

        `maybe_sent` is true when an earlier attempt may have reached the exchange (a redelivered
        signal, a restart): then the first step is the lookup, not a send.
        """
        account = account_key(order.tenant_id, order.mode)
        deadline = time.monotonic() + self.deadline_seconds
        pause = 0.1
        last: ExchangeError | None = None
        while True:
            if maybe_sent:
                try:
                    found = await self.lookup(client, order)
                except ExchangeError as error:
                    last = error
                    self._failed(account, error)
                else:
                    if found is not None:
                        self.adopted += 1
                        self.breaker.success(account)
                        return Placement(True, found)
                    maybe_sent = False
                    continue
            elif time.monotonic() < deadline:
                try:
                    result = await client.call("place_order", **order_params(order))
                except ExchangeError as error:
                    last = error
                    if error.duplicate:
                        maybe_sent = True  # it exists: adopt it
                        continue
                    if error.rate_limited or error.code == TIMESTAMP_ERROR:
                        continue  # nothing executed; the budget waits for the reset time
                    if not error.unknown:
                        self.breaker.success(account)  # the exchange answered: it is up
                        return Placement(False, None, error)
                    self._failed(account, error)
                    maybe_sent = True
                else:
                    self.breaker.success(account)
                    return Placement(
                        True, {"orderId": result.get("orderId", ""), "orderLinkId": order.order_link_id}
                    )
            if time.monotonic() >= deadline:
                return Placement(False, None, last or ExchangeError("order outcome unknown", unknown=True))
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _failed(self, account: str, error: ExchangeError) -> None:
        if error.rate_limited:
            return  # our own budget's business, not a sign the exchange is failing
        if self.breaker.failure(account):
            log.warning("circuit breaker tripped", extra={"account": account, "error": error.message})


async def by_link(client: AccountClient, method: str, order: models.Order) -> list[dict[str, Any]]:
    """The exchange's rows of `method` (open orders or order history) with the order's orderLinkId."""
    result = await client.call(
        method, category=order.category, symbol=order.symbol, orderLinkId=order.order_link_id
    )
    return [dict(row) for row in result.get("list", []) if row.get("orderLinkId") == order.order_link_id]


def mark_accepted(order_id: str, exchange_order_id: str) -> Any:
    """Record the exchange's id; the status moves to Created only if the stream has not moved it on."""

    def work(session: Any) -> models.Order:
        session.execute(sql(ACCEPT), {"oid": exchange_order_id, "id": order_id})
        row = session.get(models.Order, order_id)
        session.refresh(row)
        return row

    return work


ORDERS: Any = models.Order.__table__  # type: ignore[attr-defined]
OUTCOMES: Any = models.SignalOutcome.__table__  # type: ignore[attr-defined]


ORDER_COLUMNS = [c.name for c in ORDERS.c]
INSERT_ORDERS = unnest_insert(ORDERS, ORDER_COLUMNS)
OUTCOME_COLUMNS = ["tenant_id", "signal_id", "bot_id", "outcome", "order_id", "reason", "record_time"]
INSERT_OUTCOMES = unnest_insert(OUTCOMES, OUTCOME_COLUMNS)


@dataclass
class Accepted:
    """An order the exchange took (its id), and the signal outcome row (exec_signal) that goes with it."""

    order_id: str
    exchange_order_id: str
    outcome: dict[str, Any]


ACCEPT = (
    "update exec_order set exchange_order_id = :oid, revision = revision + 1,"
    " status = case when status = 'PendingSubmit' then 'Created' else status end,"
    " update_time = now() where id = :id"
)
# ACCEPT for many orders in one statement that also answers the rows as stored (one round trip
# instead of an UPDATE per order and a SELECT), typed by the table's columns.
ACCEPT_MANY = sql(
    "update exec_order o set exchange_order_id = v.oid, revision = o.revision + 1,"
    " status = case when o.status = 'PendingSubmit' then 'Created' else o.status end,"
    " update_time = now()"
    " from unnest(cast(:ids as text[]), cast(:oids as text[])) as v(id, oid)"
    " where o.id = v.id returning o.*"
).columns(*ORDERS.c)


def accept_many(session: Any, items: list[Accepted]) -> list[Any]:
    """`mark_accepted` and the outcome for many orders at once: one UPDATE ... RETURNING and one
    multi-row INSERT, instead of three round trips per order (the bulk of a busy candle's database
    time). Answers the stored rows (attributes named like `models.Order`'s) as plain result rows:
    building ORM objects for them cost more than the statements."""
    ids = [i.order_id for i in items]
    updated = session.execute(ACCEPT_MANY, {"ids": ids, "oids": [i.exchange_order_id for i in items]})
    rows = {r.id: r for r in updated}
    session.execute(INSERT_OUTCOMES, columns([i.outcome for i in items], OUTCOME_COLUMNS))
    return [rows[i] for i in ids]


def insert_orders(session: Any, orders: list[models.Order]) -> list[None]:
    """Store new PENDING_SUBMIT orders with one multi-row INSERT (no ORM unit of work: a busy
    candle's orders are all new rows). A duplicate orderLinkId fails the batch; the store then
    tries each order alone, so only its own signal sees the IntegrityError."""
    session.execute(INSERT_ORDERS, columns(orders, ORDER_COLUMNS))
    return [None] * len(orders)
