"""The tenant's audit trail: append-only and hash-chained.

Each entry's `hash` is SHA-256 over the previous entry's hash and a canonical JSON serialisation of
every other field, so editing, deleting or reordering any entry breaks the chain from there on.
Appends to one tenant's chain are serialised by a transaction-scoped advisory lock, so concurrent
appends cannot fork it. The database role cannot UPDATE or DELETE this table (migration 0001).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text
from sqlmodel import Session, col, select

from services.tenants.models import AuditEntry

GENESIS = "0" * 64
VERIFY_BATCH = 1000


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(entry: AuditEntry) -> bytes:
    fields = {
        "id": entry.id,
        "tenant_id": entry.tenant_id,
        "sequence": entry.sequence,
        "occur_time": _ts(entry.occur_time),
        "record_time": _ts(entry.record_time),
        "actor_kind": entry.actor_kind,
        "actor_id": entry.actor_id,
        "actor_email": entry.actor_email,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": {str(k): str(v) for k, v in sorted(entry.details.items())},
        "source_service": entry.source_service,
        "client_ip": entry.client_ip,
        "trace_id": entry.trace_id,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


@dataclass
class Action:
    """What to record; `append` adds the chain fields."""

    action: str
    actor_kind: str
    actor_id: str
    actor_email: str = ""
    target_type: str = ""
    target_id: str = ""
    details: dict[str, str] = field(default_factory=dict)
    source_service: str = "tenants"
    client_ip: str = ""
    trace_id: str = ""
    occur_time: datetime | None = None
    idempotency_key: str | None = None


def append(session: Session, tenant_id: str, action: Action) -> tuple[AuditEntry, bool]:
    """Append within the caller's transaction; returns (entry, created). With an idempotency key seen
    before, returns the earlier entry and False."""
    session.execute(text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"audit:{tenant_id}"})
    if action.idempotency_key:
        earlier = session.exec(
            select(AuditEntry).where(
                AuditEntry.tenant_id == tenant_id, AuditEntry.idempotency_key == action.idempotency_key
            )
        ).first()
        if earlier is not None:
            return earlier, False
    last = session.exec(
        select(AuditEntry).where(AuditEntry.tenant_id == tenant_id).order_by(col(AuditEntry.sequence).desc())
    ).first()
    now = datetime.now(UTC)
    entry = AuditEntry(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        sequence=(last.sequence + 1) if last else 1,
        occur_time=action.occur_time or now,
        record_time=now,
        actor_kind=action.actor_kind,
        actor_id=action.actor_id,
        actor_email=action.actor_email,
        action=action.action,
        target_type=action.target_type,
        target_id=action.target_id,
        details=dict(action.details),
        source_service=action.source_service,
        client_ip=action.client_ip,
        trace_id=action.trace_id,
        idempotency_key=action.idempotency_key,
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    entry.hash = entry_hash(entry.prev_hash, entry)
    session.add(entry)
    session.flush()
    return entry, True


@dataclass
class ChainReport:
    valid: bool
    checked: int
    first_invalid: int = 0
    message: str = ""
    head_hash: str = ""


def _entries(session: Session, tenant_id: str, start: int, end: int | None) -> Iterator[AuditEntry]:
    after = start - 1
    while True:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.sequence > after)
        if end is not None:
            query = query.where(AuditEntry.sequence <= end)
        batch = list(session.exec(query.order_by(col(AuditEntry.sequence)).limit(VERIFY_BATCH)))
        yield from batch
        if len(batch) < VERIFY_BATCH:
            return
        after = batch[-1].sequence


def verify(session: Session, tenant_id: str, start: int = 1, end: int | None = None) -> ChainReport:
    """Recompute the chain over [start, end]; the first entry that fails names where it breaks."""
    start = max(start, 1)
    if start == 1:
        prev_hash, expected = GENESIS, 1
    else:
        before = session.exec(
            select(AuditEntry).where(AuditEntry.tenant_id == tenant_id, AuditEntry.sequence == start - 1)
        ).first()
        if before is None:
            return ChainReport(False, 0, start - 1, f"entry {start - 1} before the range is missing")
        prev_hash, expected = before.hash, start
    checked = 0
    for entry in _entries(session, tenant_id, start, end):
        if entry.sequence != expected:
            return ChainReport(
                False, checked, expected, f"gap between {expected - 1} and {entry.sequence}", prev_hash
            )
        if entry.prev_hash != prev_hash:
            return ChainReport(
                False, checked, entry.sequence, f"broken link at sequence {entry.sequence}", prev_hash
            )
        if entry_hash(prev_hash, entry) != entry.hash:
            return ChainReport(
                False, checked, entry.sequence, f"hash mismatch at sequence {entry.sequence}", prev_hash
            )
        prev_hash, expected, checked = entry.hash, expected + 1, checked + 1
    if end is not None and checked and expected <= end:
        return ChainReport(False, checked, expected, f"entries {expected} to {end} are missing", prev_hash)
    return ChainReport(True, checked, 0, "", prev_hash if checked else "")
