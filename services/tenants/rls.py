"""Database transactions under row-level security.

Every transaction first drops to the service's NOLOGIN role (`SET LOCAL ROLE`) and names its tenant
(`app.tenant_id`); PostgreSQL then shows and accepts only that tenant's rows, whatever a query
forgets. Both settings are LOCAL, so they end with the transaction and a pooled connection never
carries one tenant's setting into another's transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlmodel import Session

from services.common.db import make_engine
from services.tenants import events

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


class Database:
    def __init__(self, url: str, schema: str, *, pool_size: int = 10) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
        self.schema = schema
        self.role = f"{schema}_app"
        self.engine: Engine = make_engine(url, schema, pool_size=pool_size)

    @contextmanager
    def tenant(self, tenant_id: str) -> Iterator[Session]:
        """One transaction that sees only `tenant_id`'s rows; commits on success, rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                session.execute(text(f'set local role "{self.role}"'))
                session.execute(text("select set_config('app.tenant_id', :tid, true)"), {"tid": tenant_id})
                yield session
            events.committed(session)

    @staticmethod
    def switch(session: Session, tenant_id: str) -> None:
        """Continue the same transaction as another tenant (an admin's action recorded in both)."""
        session.execute(text("select set_config('app.tenant_id', :tid, true)"), {"tid": tenant_id})

    def tenant_of(self, lookup: str, needle: str) -> str | None:
        """Which tenant owns an email, refresh-token digest or invite digest (before any tenant is known).

        `lookup` is one of the SECURITY DEFINER functions of the migration; they return a tenant id only.
        """
        if lookup not in {"tenant_of_email", "tenant_of_refresh_token", "tenant_of_invite", "tenant_of_user"}:
            raise ValueError(f"unknown lookup {lookup}")
        with self.tenant("") as session:
            found = session.execute(text(f"select {lookup}(:needle)"), {"needle": needle}).scalar()
        return str(found) if found else None

    def dispose(self) -> None:
        self.engine.dispose()
