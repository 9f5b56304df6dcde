"""What other services do, appended to the audit trail: strategy's bot lifecycle (`bot.lifecycle.>`)
and execution's kill-switch changes (`exec.risk.>`, kill-switch kinds only).

Durable JetStream consumers deliver each event until it is recorded; the append and its idempotency
key (the event's id) commit together, so a redelivery or a restart between commit and ack finds the
earlier entry and appends nothing. A GLOBAL kill switch belongs to no tenant: it is recorded in the
chain of the platform's own organisation, the one of the admin who changed it (as every admin action is
recorded in the admin's organisation). Events for a tenant tenants does not know are dropped (logged).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.msg import Msg
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as execution_events
from tradebot.strategy.v1 import events_pb2 as strategy_events
from tradebot.tenants.v1 import events_pb2 as tenant_events

from services.common.bus import Bus
from services.common.errors import InvalidArgument
from services.tenants import audit, convert, events
from services.tenants.models import Tenant, User
from services.tenants.rls import Database

log = logging.getLogger("tradebot.tenants.audit_feed")

BOT_STATUS = strategy_events.BotStatus
STATUS_ACTIONS = {
    strategy_events.BOT_STATUS_RUNNING: "bot.start",
    strategy_events.BOT_STATUS_PAUSED: "bot.pause",
    strategy_events.BOT_STATUS_STOPPED: "bot.stop",
}
KILL_SWITCH_ACTIONS = {
    execution_events.RISK_EVENT_KIND_KILL_SWITCH_ENGAGED: "kill_switch.engage",
    execution_events.RISK_EVENT_KIND_KILL_SWITCH_RELEASED: "kill_switch.release",
}
# The user id execution puts in a kill-switch event's details (the event has no actor field).
CHANGED_BY = "changed_by"


def bot_action(event: strategy_events.BotLifecycleEvent) -> str:
    if event.deleted:
        return "bot.delete"
    if event.previous_status == strategy_events.BOT_STATUS_UNSPECIFIED:
        return "bot.create"
    if event.previous_status == event.bot.status:
        return "bot.update"
    # Back to CREATED only when strategy could not save a first start and undoes it.
    return STATUS_ACTIONS.get(event.bot.status, "bot.revert")


def _time(stamp: Timestamp, present: bool) -> datetime | None:
    """The event's time; a missing or impossible one becomes the time of recording (retrying an
    event cannot mend it)."""
    if not present:
        return None
    try:
        return convert.to_datetime(stamp, "occur_time")
    except InvalidArgument:
        return None


def _actor_kind(actor_id: str) -> str:
    """Users act through RPCs; a platform service's token names it as `service:<name>`; none: SYSTEM."""
    system = not actor_id or actor_id.startswith("service:")
    return tenant_events.ActorKind.Name(
        tenant_events.ACTOR_KIND_SYSTEM if system else tenant_events.ACTOR_KIND_USER
    )


class AuditFeed:
    def __init__(self, db: Database, bus: Bus, durable: str = "tenants-audit") -> None:
        self.db = db
        self.bus = bus
        # Replicas share these durables (each event is recorded by one of them); separate platforms on
        # one NATS server (tests) need their own.
        self.durable = durable

    def start(self) -> None:
        bots, risk = strategy_events.BotLifecycleEvent, execution_events.RiskEvent
        self.bus.consume("BOTS", f"{self.durable}-bots", "bot.lifecycle.>", bots, self.on_bot)
        self.bus.consume("EXECUTION", f"{self.durable}-kill-switches", "exec.risk.>", risk, self.on_risk)

    async def on_bot(self, event: strategy_events.BotLifecycleEvent, raw: Msg | None = None) -> None:
        bot = event.bot
        if not event.event_id or not bot.tenant_id:
            log.warning("bot lifecycle event without id or tenant dropped")
            return
        details = {
            "name": bot.name,
            "status": BOT_STATUS.Name(bot.status),
            "previous_status": BOT_STATUS.Name(event.previous_status),
            "reason": event.reason,
            "symbol": bot.symbol,
            "mode": common.TradingMode.Name(bot.mode) if bot.mode else "",
        }
        action = audit.Action(
            action=bot_action(event),
            actor_kind=_actor_kind(event.actor_id),
            actor_id=event.actor_id,
            target_type="bot",
            target_id=bot.id,
            details={k: v for k, v in details.items() if v},
            source_service="strategy",
            occur_time=_time(event.occur_time, event.HasField("occur_time")),
            idempotency_key=f"bot.lifecycle:{event.event_id}",
        )
        await self._record(bot.tenant_id, action)

    async def on_risk(self, event: execution_events.RiskEvent, raw: Msg | None = None) -> None:
        name = KILL_SWITCH_ACTIONS.get(event.kind)
        if name is None:  # skips, rejections and the like belong to execution's own risk log
            return
        if not event.id:
            log.warning("kill-switch event without id dropped")
            return
        actor_id = event.details.get(CHANGED_BY, "")
        scope = event.details.get("scope", "")
        tenant_id = event.tenant_id
        if not tenant_id:  # GLOBAL: the platform's organisation, the admin's own
            found = (
                await asyncio.to_thread(self.db.tenant_of, "tenant_of_user", actor_id) if actor_id else None
            )
            if not found:
                log.warning(
                    "global kill-switch event of an unknown admin dropped", extra={"event_id": event.id}
                )
                return
            tenant_id = found
        if event.bot_id:
            target_type, target_id = "bot", event.bot_id
        elif event.tenant_id:
            target_type, target_id = "tenant", event.tenant_id
        else:
            target_type, target_id = "platform", ""
        details = {"scope": scope, "message": event.message, "risk_event_id": event.id}
        action = audit.Action(
            action=name,
            actor_kind=_actor_kind(actor_id),
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            details={k: v for k, v in details.items() if v},
            source_service="execution",
            occur_time=_time(event.occur_time, event.HasField("occur_time")),
            idempotency_key=f"exec.risk:{event.id}",
        )
        await self._record(tenant_id, action)

    async def _record(self, tenant_id: str, action: audit.Action) -> None:
        outbox, token = events.open_outbox()
        try:
            await asyncio.to_thread(self._append, tenant_id, action)
        finally:
            events.close_outbox(token)
        await events.publish(self.bus, outbox)

    def _append(self, tenant_id: str, action: audit.Action) -> None:
        with self.db.tenant(tenant_id) as session:
            if session.get(Tenant, tenant_id) is None:
                log.info("event of a tenant not known here dropped", extra={"tenant_id": tenant_id})
                return
            user = session.get(User, action.actor_id) if action.actor_id else None
            if user is not None:
                action.actor_email = user.email
            entry, created = audit.append(session, tenant_id, action)
            if created:
                events.queue(session, f"audit.{tenant_id}", convert.audit_event(entry), entry.id)
