"""NATS events of the tenants service, published only after the transaction that caused them commits.

A handler's transaction queues its events on the session (`queue`); `Database.tenant` moves them to
the request's outbox once the commit succeeded (`committed`), and the RPC wrapper publishes the outbox
when the handler returns, failed or not. An event of a rolled-back transaction is never published.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlmodel import Session
from tradebot.tenants.v1 import events_pb2

from services.common.bus import Bus

log = logging.getLogger("tradebot.tenants.events")

Event = tuple[str, Message, str]  # subject, message, Nats-Msg-Id
_outbox: contextvars.ContextVar[list[Event] | None] = contextvars.ContextVar("tenants_outbox", default=None)


def queue(session: Session, subject: str, message: Message, msg_id: str) -> None:
    session.info.setdefault("events", []).append((subject, message, msg_id))


def committed(session: Session) -> None:
    outbox = _outbox.get()
    if outbox is not None:
        outbox.extend(session.info.pop("events", []))


def open_outbox() -> tuple[list[Event], contextvars.Token[list[Event] | None]]:
    outbox: list[Event] = []
    return outbox, _outbox.set(outbox)


def close_outbox(token: contextvars.Token[list[Event] | None]) -> None:
    _outbox.reset(token)


async def publish(bus: Bus | None, events: list[Event]) -> None:
    """Best effort: the database already holds the truth; a missed event is logged, not fatal."""
    if bus is None:
        return
    for subject, message, msg_id in events:
        try:
            await bus.publish(subject, message, msg_id)
        except Exception as error:  # any NATS failure: the change itself is committed
            log.warning("event not published", extra={"subject": subject, "error": type(error).__name__})


def credentials_changed(tenant_id: str, change: int, version: int) -> tuple[str, Message, str]:
    event_id = str(uuid.uuid4())
    message = events_pb2.ExchangeCredentialsChanged(
        event_id=event_id,
        tenant_id=tenant_id,
        change=change,
        vault_version=version,
    )
    message.change_time.FromDatetime(datetime.now(UTC))
    return f"tenant.credentials.{tenant_id}", message, event_id
