"""The engine's durable memory: each group's cursor, the position updates execution reported (with the
candle they followed), and when each bot's current run began. With these and the candle history a
restarted engine rebuilds exactly the state it had (see engine.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from decimal import Decimal

from sqlalchemy import Engine, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col, select
from tradebot.strategy.v1 import events_pb2

from services.common import db
from services.strategy import signals
from services.strategy.models import BotRow, GroupCursorRow, PositionUpdateRow

log = logging.getLogger("tradebot.strategy.journal")


# A cursor only moves forward, whatever order the writes land in; one statement for all groups.
ADVANCE_CURSORS = db.unnest_insert(
    GroupCursorRow.__table__,  # type: ignore[attr-defined]
    ["group_id", "evaluated_ms"],
    "on conflict (group_id) do update"
    " set evaluated_ms = greatest(group_cursor.evaluated_ms, excluded.evaluated_ms)",
)


class Journal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pending: asyncio.Queue[tuple[str, int, list[events_pb2.Signal]]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name="journal")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        await self._pending.join()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def commit_later(self, group_id: str, candle_ms: int, published: list[events_pb2.Signal]) -> None:
        """Queue a candle's published signals and the group's cursor for the writer.

        Signals are durable once JetStream has them (they were published before this is called), so the
        candle is acknowledged without waiting for PostgreSQL: a crash before the write leaves the cursor
        behind, the restart evaluates those candles again and publishes the same ids (dropped by JetStream
        as duplicates) and records them then. Writing off the candle path keeps one symbol's database round
        trip out of every other symbol's latency.
        """
        self._pending.put_nowait((group_id, candle_ms, published))

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while not self._pending.empty():
                batch.append(self._pending.get_nowait())
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception:
                log.exception("journal write failed; retrying")
                for item in batch:
                    self._pending.put_nowait(item)
                await asyncio.sleep(1.0)
            finally:
                for _ in batch:
                    self._pending.task_done()

    def _write(self, batch: list[tuple[str, int, list[events_pb2.Signal]]]) -> None:
        cursors: dict[str, int] = {}
        for group_id, candle_ms, _ in batch:
            cursors[group_id] = max(candle_ms, cursors.get(group_id, candle_ms))
        with Session(self.engine) as session, session.begin():
            signals.record(session, [s for _, _, published in batch for s in published])
            moved = sorted(cursors.items())  # one lock order for every writer
            session.connection().execute(
                ADVANCE_CURSORS, {"group_id": [g for g, _ in moved], "evaluated_ms": [ms for _, ms in moved]}
            )

    def record_signals(self, published: list[events_pb2.Signal]) -> None:
        """Signals published outside any group's candles (a stop's EXIT for a bot not evaluated here)."""
        with Session(self.engine) as session, session.begin():
            signals.record(session, published)

    def cursor(self, group_id: str) -> int | None:
        with Session(self.engine) as session:
            row = session.get(GroupCursorRow, group_id)
            return row.evaluated_ms if row else None

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
