"""The audit trail: entries from this service and from others, filters, and tamper detection (the
tampering is done with a superuser connection, as an attacker with database access would)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from sqlalchemy import create_engine, text
from tradebot.tenants.v1 import events_pb2
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.db import sqlalchemy_url
from tests.tenants.conftest import Member, Stack


async def _trail(stack: Stack) -> Member:
    owner = await stack.new_tenant("audit")
    for n in range(3):
        request = pb.RecordAuditEventRequest(
            tenant_id=owner.tenant_id,
            actor_kind=events_pb2.ACTOR_KIND_USER,
            actor_id=owner.user.id,
            action="bot.start",
            target_type="bot",
            target_id=f"bot-{n}",
            idempotency_key=f"strategy:{n}",
            details={"mode": "PAPER"},
        )
        first = await stack.stub.RecordAuditEvent(request, metadata=stack.service_meta())
        again = await stack.stub.RecordAuditEvent(request, metadata=stack.service_meta())
        assert first.event.id == again.event.id and first.event.source_service == "strategy"
    await stack.stub.UpdateSettings(
        pb.UpdateSettingsRequest(
            settings=pb.TenantSettings(require_totp=False), update_mask={"paths": ["require_totp"]}
        ),
        metadata=owner.meta,
    )
    return owner


async def test_list_filters_by_action_prefix_and_actor(stack: Stack) -> None:
    owner = await _trail(stack)
    bots = await stack.stub.ListAuditEvents(pb.ListAuditEventsRequest(action="bot."), metadata=owner.meta)
    assert [e.target_id for e in bots.events] == ["bot-2", "bot-1", "bot-0"]
    page = await stack.stub.ListAuditEvents(pb.ListAuditEventsRequest(page_size=2), metadata=owner.meta)
    rest = await stack.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(page_size=2, page_token=page.next_page_token), metadata=owner.meta
    )
    sequences = [e.sequence for e in [*page.events, *rest.events]]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == 4
    with pytest.raises(grpc.aio.AioRpcError) as mixed:
        await stack.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(page_size=2, action="bot.", page_token=page.next_page_token),
            metadata=owner.meta,
        )
    assert mixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    mine = await stack.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(actor_id=owner.user.id), metadata=owner.meta
    )
    assert {e.action for e in mine.events} >= {"user.signup", "bot.start", "settings.update"}


@pytest.fixture
def superuser(stack: Stack) -> Iterator[object]:
    engine = create_engine(sqlalchemy_url(stack.infra.postgres.url))
    yield engine
    engine.dispose()


async def _verify(stack: Stack, owner: Member) -> pb.VerifyAuditChainResponse:
    return await stack.stub.VerifyAuditChain(pb.VerifyAuditChainRequest(), metadata=owner.meta)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            'update {t} set details = \'{{"mode": "LIVE"}}\' where tenant_id = :tid and sequence = 3',
            "hash mismatch at sequence 3",
        ),
        ("delete from {t} where tenant_id = :tid and sequence = 3", "gap between 2 and 4"),
        (
            "update {t} set sequence = -3 where tenant_id = :tid and sequence = 3;"
            "update {t} set sequence = 3 where tenant_id = :tid and sequence = 4;"
            "update {t} set sequence = 4 where tenant_id = :tid and sequence = -3",
            "at sequence 3",
        ),
        ("update {t} set hash = repeat('0', 64) where tenant_id = :tid and sequence = 2", "at sequence"),
    ],
    ids=["edited", "deleted", "reordered", "rehashed"],
)
async def test_verify_catches_tampering(stack: Stack, superuser: object, tamper: str, message: str) -> None:
    owner = await _trail(stack)
    before = await _verify(stack, owner)
    assert before.valid and before.checked_count == 5 and len(before.head_hash) == 64
    table = f'"{stack.settings.db_schema}".audit_event'
    with superuser.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(text(tamper.format(t=table)), {"tid": owner.tenant_id})
    after = await _verify(stack, owner)
    assert not after.valid and message in after.message and after.first_invalid_sequence in (2, 3)


async def test_the_service_role_cannot_rewrite_history(stack: Stack) -> None:
    owner = await stack.new_tenant("immutable")
    for statement in ("update audit_event set action = 'x'", "delete from audit_event"):
        refused = pytest.raises(Exception, match="permission denied")
        with refused, stack.deps.db.tenant(owner.tenant_id) as session:
            session.execute(text(statement))
