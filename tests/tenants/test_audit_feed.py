"""Other services' events in the audit trail: bot lifecycle from strategy and kill switches from
execution, published on real NATS JetStream exactly as those services publish them, consumed by the
tenants service's durable consumers into the tenant's hash chain, once per event whatever is
redelivered or restarted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as ee
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common import bus as bus_module
from services.tenants.audit_feed import AuditFeed
from tests.tenants.conftest import Member, Stack


@pytest.fixture
async def bus(stack: Stack) -> AsyncIterator[bus_module.Bus]:
    connected = await bus_module.connect(stack.infra.nats.url, "tenants")
    try:
        yield connected
    finally:
        await connected.drain()


def _feed(stack: Stack, bus: bus_module.Bus) -> AuditFeed:
    # Durables of this stack's own (other platforms in the session share the NATS server; on a shared
    # durable their tenants service would take these events and drop them as unknown tenants).
    feed = AuditFeed(stack.deps.db, bus, f"audit-{stack.settings.db_schema}")
    feed.start()
    return feed


async def _until(probe: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def lifecycle(owner: Member, bot_id: str, previous: int, status: int, **extra: Any) -> se.BotLifecycleEvent:
    """As strategy's Bots._publish builds it."""
    event = se.BotLifecycleEvent(
        event_id=str(uuid.uuid4()),
        bot=se.Bot(
            id=bot_id,
            tenant_id=owner.tenant_id,
            name="audited",
            symbol="SOLUSDT",
            mode=common.TRADING_MODE_PAPER,
            status=status,
        ),
        previous_status=previous,
        reason="user request",
        actor_id=owner.user.id,
        **extra,
    )
    event.occur_time.GetCurrentTime()
    return event


async def _bot_trail(stack: Stack, owner: Member, bot_id: str) -> list[pb.AuditEvent]:
    reply = await stack.stub.ListAuditEvents(pb.ListAuditEventsRequest(action="bot."), metadata=owner.meta)
    return sorted((e for e in reply.events if e.target_id == bot_id), key=lambda e: e.sequence)


async def test_bot_lifecycle_is_recorded_once_each_with_its_actor(stack: Stack, bus: bus_module.Bus) -> None:
    owner = await stack.new_tenant("feed")
    bot_id = str(uuid.uuid4())
    steps = [
        lifecycle(owner, bot_id, se.BOT_STATUS_UNSPECIFIED, se.BOT_STATUS_CREATED),
        lifecycle(owner, bot_id, se.BOT_STATUS_CREATED, se.BOT_STATUS_RUNNING),
        lifecycle(owner, bot_id, se.BOT_STATUS_RUNNING, se.BOT_STATUS_PAUSED),
        lifecycle(owner, bot_id, se.BOT_STATUS_PAUSED, se.BOT_STATUS_STOPPED),
        lifecycle(owner, bot_id, se.BOT_STATUS_STOPPED, se.BOT_STATUS_STOPPED, deleted=True),
    ]
    _feed(stack, bus)
    for event in steps[:3]:
        await bus.publish(f"bot.lifecycle.{owner.tenant_id}.{bot_id}", event, event.event_id)
    await _until(lambda: _has(stack, owner, bot_id, 3), "the first three bot events in the trail")

    # A restart of the consumer (as tenants restarting) and a redelivery of every event already
    # recorded: a new Nats-Msg-Id gets past JetStream's duplicate window, so only the event id in
    # the trail's idempotency key stands between a repeat and a second entry.
    await bus.stop_consuming()
    _feed(stack, bus)
    for event in steps[:3]:
        await bus.publish(f"bot.lifecycle.{owner.tenant_id}.{bot_id}", event, f"again-{event.event_id}")
    for event in steps[3:]:
        await bus.publish(f"bot.lifecycle.{owner.tenant_id}.{bot_id}", event, event.event_id)
    # The repeats are ahead of the new events in the stream: once those are in, the repeats were seen.
    trail = await _until(lambda: _has(stack, owner, bot_id, 5), "the stop and the deletion in the trail")
    assert [e.action for e in trail] == ["bot.create", "bot.start", "bot.pause", "bot.stop", "bot.delete"]
    first = trail[0]
    assert first.actor_id == owner.user.id and first.actor_email == owner.email
    assert first.source_service == "strategy" and first.target_type == "bot"
    assert dict(trail[1].details) == {
        "name": "audited",
        "status": "BOT_STATUS_RUNNING",
        "previous_status": "BOT_STATUS_CREATED",
        "reason": "user request",
        "symbol": "SOLUSDT",
        "mode": "TRADING_MODE_PAPER",
    }
    verified = await stack.stub.VerifyAuditChain(pb.VerifyAuditChainRequest(), metadata=owner.meta)
    assert verified.valid, verified.message


async def _has(stack: Stack, owner: Member, bot_id: str, count: int) -> list[pb.AuditEvent] | None:
    trail = await _bot_trail(stack, owner, bot_id)
    assert len(trail) <= count, [e.action for e in trail]  # never more than one entry per event
    return trail if len(trail) == count else None


def kill_switch(tenant_id: str, user_id: str, scope: str, engaged: bool, bot_id: str = "") -> ee.RiskEvent:
    """As execution's SetKillSwitch builds it (risk.new_event, then convert.risk_event_pb)."""
    event = ee.RiskEvent(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        bot_id=bot_id,
        kind=ee.RISK_EVENT_KIND_KILL_SWITCH_ENGAGED if engaged else ee.RISK_EVENT_KIND_KILL_SWITCH_RELEASED,
        reason=ee.RISK_REASON_MANUAL,
        message=f"{scope} kill switch {'engaged' if engaged else 'released'} by {user_id}: checked",
        details={"scope": scope, "changed_by": user_id},
    )
    event.occur_time.GetCurrentTime()
    return event


async def test_kill_switches_are_recorded_global_ones_in_the_platform_trail(
    stack: Stack, bus: bus_module.Bus
) -> None:
    owner = await stack.new_tenant("switch")
    admin = stack.admin
    assert admin is not None
    bot_id = str(uuid.uuid4())
    tenant_on = kill_switch(owner.tenant_id, owner.user.id, "TENANT", True)
    bot_off = kill_switch(owner.tenant_id, owner.user.id, "BOT", False, bot_id)
    global_on = kill_switch("", admin.user.id, "GLOBAL", True)
    skipped = ee.RiskEvent(
        id=str(uuid.uuid4()),
        tenant_id=owner.tenant_id,
        kind=ee.RISK_EVENT_KIND_SIGNAL_SKIPPED,
        reason=ee.RISK_REASON_BELOW_MIN_QTY,
    )
    _feed(stack, bus)
    for event in (skipped, tenant_on, bot_off, tenant_on):  # the last one: a redelivery
        await bus.publish(f"exec.risk.{owner.tenant_id}", event, str(uuid.uuid4()))
    await bus.publish("exec.risk.global", global_on, global_on.id)

    async def switches(member: Member, count: int) -> list[pb.AuditEvent] | None:
        reply = await stack.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(action="kill_switch."), metadata=member.meta
        )
        ids = {tenant_on.id, bot_off.id, global_on.id}
        mine = [e for e in reply.events if e.details.get("risk_event_id") in ids]
        return sorted(mine, key=lambda e: e.sequence) if len(mine) >= count else None

    trail = await _until(lambda: switches(owner, 2), "the tenant's kill-switch changes in its trail")
    assert [(e.action, e.target_type, e.target_id) for e in trail] == [
        ("kill_switch.engage", "tenant", owner.tenant_id),
        ("kill_switch.release", "bot", bot_id),
    ]
    assert all(e.actor_id == owner.user.id and e.source_service == "execution" for e in trail)
    assert trail[0].details["scope"] == "TENANT" and "checked" in trail[0].details["message"]
    everything = await stack.stub.ListAuditEvents(pb.ListAuditEventsRequest(), metadata=owner.meta)
    assert not [e for e in everything.events if "skipped" in e.action or e.action.startswith("risk")]

    platform = await _until(lambda: switches(admin, 1), "the global kill switch in the platform's trail")
    assert [(e.action, e.target_type, e.actor_id) for e in platform] == [
        ("kill_switch.engage", "platform", admin.user.id)
    ]
    # The global event is behind the repeated TENANT one on the same consumer: the repeat was seen.
    again = await switches(owner, 2)
    assert again is not None and len(again) == 2
