"""Bots in the database, always within one tenant (the tenant comes from the caller's token)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.common.errors import AlreadyExists, NotFound
from services.strategy.models import BotRow

ACTIVE = ("running", "paused")


class BotStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def by_request(self, tenant_id: str, request_id: str) -> BotRow | None:
        with self._session() as session:
            query = select(BotRow).where(BotRow.tenant_id == tenant_id, BotRow.request_id == request_id)
            return session.scalars(query).first()

    def get(self, tenant_id: str, bot_id: str) -> BotRow:
        with self._session() as session:
            row = session.get(BotRow, bot_id)
        if row is None or row.tenant_id != tenant_id:  # another tenant's bot does not exist for this one
            raise NotFound(f"no bot {bot_id!r}", field="bot_id")
        return row

    def save(self, row: BotRow) -> BotRow:
        try:
            with self._session() as session, session.begin():
                merged = session.merge(row)
        except IntegrityError:
            raise AlreadyExists(f"a bot named {row.name!r} already exists", field="name") from None
        return merged

    def delete(self, row: BotRow) -> None:
        with self._session() as session, session.begin():
            found = session.get(BotRow, row.id)
            if found is not None:
                session.delete(found)

    def page(
        self, tenant_id: str, *, status: str, mode: str, symbol: str, after: str, size: int
    ) -> list[BotRow]:
        query = select(BotRow).where(BotRow.tenant_id == tenant_id)
        if status:
            query = query.where(BotRow.status == status)
        if mode:
            query = query.where(BotRow.mode == mode)
        if symbol:
            query = query.where(BotRow.symbol == symbol)
        if after:
            query = query.where(BotRow.name > after)
        with self._session() as session:
            return list(session.scalars(query.order_by(BotRow.name).limit(size)))

    def live_on(self, tenant_id: str, category: str, symbol: str) -> list[BotRow]:
        """The tenant's LIVE bots running or paused on one instrument (one exchange position each)."""
        query = select(BotRow).where(
            BotRow.tenant_id == tenant_id,
            BotRow.category == category,
            BotRow.symbol == symbol,
            BotRow.mode == "live",
            BotRow.status.in_(ACTIVE),  # type: ignore[attr-defined]
        )
        with self._session() as session:
            return list(session.scalars(query))

    def active(self) -> list[BotRow]:
        """Every tenant's running and paused bots: what the engine evaluates."""
        with self._session() as session:
            return list(session.scalars(select(BotRow).where(BotRow.status.in_(ACTIVE))))  # type: ignore[attr-defined]
