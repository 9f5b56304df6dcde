"""The engine's durable memory: each group's cursor, the position updates execution reported (with the
candle they followed), and when each bot's current run began. With these and the candle history a
restarted engine rebuilds exactly the state it had (see engine.py)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import Engine, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from tradebot.strategy.v1 import events_pb2

from services.strategy import signals
from services.strategy.models import BotRow, GroupCursorRow, PositionUpdateRow


class Journal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def cursor(self, group_id: str) -> int | None:
        with Session(self.engine) as session:
            row = session.get(GroupCursorRow, group_id)
            return row.evaluated_ms if row else None

    def commit(self, group_id: str, candle_ms: int, published: list[events_pb2.Signal]) -> None:
        """Record a candle's published signals and move the group's cursor to it, in one transaction."""
        with Session(self.engine) as session, session.begin():
            signals.record(session, published)
            stmt = insert(GroupCursorRow).values(group_id=group_id, evaluated_ms=candle_ms)
            session.execute(
                stmt.on_conflict_do_update(index_elements=["group_id"], set_={"evaluated_ms": candle_ms})
            )

    def position_updates(self, bot_ids: list[str]) -> dict[int, list[PositionUpdateRow]]:
        """Updates of these bots by the candle they followed, in the order they were recorded."""
        out: dict[int, list[PositionUpdateRow]] = defaultdict(list)
        if not bot_ids:
            return out
        with Session(self.engine) as session:
            query = select(PositionUpdateRow).where(PositionUpdateRow.bot_id.in_(bot_ids))  # type: ignore[attr-defined]
            for row in session.scalars(query.order_by(col(PositionUpdateRow.after_candle_ms))):
                out[row.after_candle_ms].append(row)
        return out

    def record_position(
        self, event_id: str, bot_id: str, after_candle_ms: int, kind: str, price: Decimal | None
    ) -> None:
        with Session(self.engine) as session, session.begin():
            stmt = insert(PositionUpdateRow).values(
                event_id=event_id, bot_id=bot_id, after_candle_ms=after_candle_ms, kind=kind, price=price
            )
            session.execute(stmt.on_conflict_do_nothing(index_elements=["event_id"]))

    def set_active_from(self, bot_ids: list[str], start_ms: int) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(BotRow).where(BotRow.id.in_(bot_ids)).values(active_from_ms=start_ms)  # type: ignore[attr-defined]
            )
