"""Publishing on `exec.<kind>.<tenant_id>`, after the change is committed, with ids that make a repeat a
JetStream duplicate. A failed publish is logged and not retried here: the database holds the truth and
every RPC reads it; events are the fast path for the dashboard and alerting.

Events are pipelined (`services.common.bus.Pipeline`): written in order on the one connection without
waiting for each acknowledgement, which cost a request (inbox, future, timer) per order on a busy
candle (docs/decisions/0031-execution-concurrency.md). A refusal or a lost acknowledgement is logged
when it arrives; a stored one needs nothing (no future, no parsed acknowledgement)."""

from __future__ import annotations

import logging
import uuid
from typing import TypeVar

from google.protobuf.message import Message
from tradebot.execution.v1 import events_pb2 as ev

from services.common.bus import Bus
from services.execution import convert, models
from services.execution.account_book import Changes

log = logging.getLogger("tradebot.execution.events")
T = TypeVar("T")


class Events:
    def __init__(self, bus: Bus | None) -> None:
        self.bus = bus
        # (kind, tenant) of each message in flight; nothing to do once it is stored.
        self._pipeline = bus.pipeline(_stored, _failed) if bus is not None else None

    async def _publish(self, kind: str, tenant_id: str, message: Message, msg_id: str) -> None:
        if self._pipeline is None:
            return
        try:
            # A GLOBAL kill switch has no tenant; an empty subject token would match no stream.
            await self._pipeline.publish(
                f"exec.{kind}.{tenant_id or 'global'}",
                message.SerializeToString(),
                msg_id,
                (kind, tenant_id),
                traced=True,
            )
        except Exception:  # NATS down or slow: the row is stored; do not fail the work that made it
            _failed((kind, tenant_id), None)

    async def order(self, row: models.Order) -> None:
        event_id = f"{row.id}.{row.revision}"
        await self._publish(
            "order", row.tenant_id, ev.OrderEvent(event_id=event_id, order=convert.order_pb(row)), event_id
        )

    async def fill(self, row: models.Fill) -> None:
        event_id = f"fill.{row.exec_id}"
        await self._publish(
            "fill", row.tenant_id, ev.FillEvent(event_id=event_id, fill=convert.fill_pb(row)), event_id
        )

    async def position(self, row: models.Position) -> None:
        event_id = str(uuid.uuid4())
        message = ev.PositionEvent(event_id=event_id, position=convert.position_pb(row))
        await self._publish("position", row.tenant_id, message, event_id)

    async def wallet(self, row: models.WalletSnapshot) -> None:
        event_id = str(uuid.uuid4())
        await self._publish(
            "wallet",
            row.tenant_id,
            ev.WalletEvent(event_id=event_id, wallet=convert.wallet_pb(row)),
            event_id,
        )

    async def risk(self, row: models.RiskEventRow) -> None:
        await self._publish("risk", row.tenant_id, convert.risk_event_pb(row), row.id)

    async def changes(self, changes: Changes) -> None:
        """Publish everything one committed transaction changed."""
        for order in _unique(changes.orders):
            await self.order(order)
        for fill in changes.fills:
            await self.fill(fill)
        for position in _unique(changes.positions):
            await self.position(position)
        for wallet in changes.wallets[-1:]:  # the latest balances are what matter
            await self.wallet(wallet)
        for event in changes.risk:
            await self.risk(event)


def _stored(sent: tuple[str, str], reply: bytes) -> None:
    pass


def _failed(sent: tuple[str, str], error: Exception | None) -> None:
    kind, tenant_id = sent
    log.warning("event not published", extra={"kind": kind, "tenant_id": tenant_id})


def _unique(rows: list[T]) -> list[T]:
    """The last state of each row, once (a transaction may touch a row several times)."""
    seen: dict[int, T] = {}
    for row in rows:
        seen[id(row)] = row
    return list(seen.values())
