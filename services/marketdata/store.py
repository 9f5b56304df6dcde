"""Everything the service keeps in PostgreSQL: candle history, publishing cursors and leases.

Writes are idempotent upserts keyed by what a row means (a stream and a candle start; a caller and a
stream), so replaying a backfill, a gap repair or a restart never duplicates anything. SQLAlchemy is
blocking; every method runs its statement in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from services.marketdata.domain import Candle, StreamKey
from services.marketdata.models import CandleRow, LeaseRow, StreamCursorRow

CANDLE = CandleRow.__table__  # type: ignore[attr-defined]
CURSOR = StreamCursorRow.__table__  # type: ignore[attr-defined]
LEASE = LeaseRow.__table__  # type: ignore[attr-defined]
PRICE_COLUMNS = ("end_ms", "open", "high", "low", "close", "volume", "turnover")
COLUMNS = ", ".join(("category", "symbol", "interval", "start_ms", *PRICE_COLUMNS))
# Temporary: one per connection, emptied by each commit.
STAGING = "CREATE TEMP TABLE IF NOT EXISTS candle_staging (LIKE candle) ON COMMIT DELETE ROWS"
UPSERT_STAGED = (
    f"INSERT INTO candle ({COLUMNS}) SELECT {COLUMNS} FROM candle_staging "
    "ON CONFLICT (category, symbol, interval, start_ms) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in PRICE_COLUMNS)
)
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """A text field in COPY's text format (backslash, tab and line breaks escaped)."""
    return value.translate(_COPY_ESCAPES)


def _stream_filter(table: sa.Table, key: StreamKey) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.category == key.category, table.c.symbol == key.symbol, table.c.interval == key.interval
    )


def _candle_of(key: StreamKey, row: sa.Row[tuple[object, ...]]) -> Candle:
    m = row._mapping
    return Candle(
        key, m["start_ms"], m["end_ms"], m["open"], m["high"], m["low"], m["close"], m["volume"],
        m["turnover"], True,
    )  # fmt: skip


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # candles ---------------------------------------------------------------------------------
    def _upsert_candles(self, candles: list[Candle]) -> None:
        # COPY into a per-connection staging table, then one upsert from it. SQLAlchemy's
        # executemany spent ~40 µs of CPU per row (bind processing in Python) on the service's one
        # core, as much as the rest of a candle's way from the WebSocket to JetStream; COPY ~4 µs.
        rows = io.StringIO(
            "".join(
                f"{_copy_text(c.key.category)}\t{_copy_text(c.key.symbol)}\t{_copy_text(c.key.interval)}\t"
                f"{c.start}\t{c.end}\t{c.open}\t{c.high}\t{c.low}\t{c.close}\t{c.volume}\t{c.turnover}\n"
                for c in candles
            )
        )
        with self.engine.begin() as conn:
            conn.exec_driver_sql(STAGING)
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.copy_expert(f"COPY candle_staging ({COLUMNS}) FROM STDIN", rows)
            finally:
                cursor.close()
            conn.exec_driver_sql(UPSERT_STAGED)

    async def upsert_candles(self, candles: list[Candle]) -> None:
        if candles:
            await asyncio.to_thread(self._upsert_candles, candles)

    def _candles(self, key: StreamKey, start: int, end: int, limit: int) -> list[Candle]:
        query = (
            sa.select(CANDLE)
            .where(_stream_filter(CANDLE, key), CANDLE.c.start_ms >= start, CANDLE.c.start_ms < end)
            .order_by(CANDLE.c.start_ms)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_candle_of(key, row) for row in conn.execute(query)]

    async def candles(self, key: StreamKey, start: int, end: int, limit: int) -> list[Candle]:
        """Stored candles with start in [start, end), ascending, at most `limit`."""
        return await asyncio.to_thread(self._candles, key, start, end, limit)

    def _bounds(self, key: StreamKey) -> tuple[int | None, int | None]:
        query = sa.select(sa.func.min(CANDLE.c.start_ms), sa.func.max(CANDLE.c.start_ms)).where(
            _stream_filter(CANDLE, key)
        )
        with self.engine.connect() as conn:
            low, high = conn.execute(query).one()
        return low, high

    async def bounds(self, key: StreamKey) -> tuple[int | None, int | None]:
        """Start of the oldest and of the newest stored candle of a stream."""
        return await asyncio.to_thread(self._bounds, key)

    # publishing cursors --------------------------------------------------------------------
    def _advance_cursors(self, cursors: dict[StreamKey, int]) -> None:
        rows = [
            {"category": k.category, "symbol": k.symbol, "interval": k.interval, "published_start_ms": v}
            for k, v in cursors.items()
        ]
        statement = insert(CURSOR)
        statement = statement.on_conflict_do_update(
            index_elements=["category", "symbol", "interval"],
            set_={
                "published_start_ms": sa.func.greatest(
                    CURSOR.c.published_start_ms, statement.excluded.published_start_ms
                )
            },
        )
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    async def advance_cursors(self, cursors: dict[StreamKey, int]) -> None:
        """Record the newest published candle start of each stream (never moving a cursor back)."""
        if cursors:
            await asyncio.to_thread(self._advance_cursors, cursors)

    def _cursor(self, key: StreamKey) -> int | None:
        query = sa.select(CURSOR.c.published_start_ms).where(_stream_filter(CURSOR, key))
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return None if value is None else int(value)

    async def cursor(self, key: StreamKey) -> int | None:
        return await asyncio.to_thread(self._cursor, key)

    # leases -----------------------------------------------------------------------------------
    def _replace_lease(self, caller: str, keys: Iterable[StreamKey], expires_at: datetime) -> None:
        rows = [
            {
                "caller_id": caller,
                "category": k.category,
                "symbol": k.symbol,
                "interval": k.interval,
                "expires_at": expires_at,
            }
            for k in keys
        ]
        with self.engine.begin() as conn:
            # Two calls of one caller at once would both delete, then both insert: one lease
            # replacement per caller at a time (the lock ends with the transaction).
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:caller))"), {"caller": caller})
            conn.execute(sa.delete(LEASE).where(LEASE.c.caller_id == caller))
            if rows:
                conn.execute(insert(LEASE), rows)

    async def replace_lease(self, caller: str, keys: Iterable[StreamKey], expires_at: datetime) -> None:
        await asyncio.to_thread(self._replace_lease, caller, list(keys), expires_at)

    def _leases(self, now: datetime) -> list[tuple[str, StreamKey, datetime]]:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(LEASE).where(LEASE.c.expires_at <= now))
            rows = conn.execute(sa.select(LEASE)).all()
        return [(r.caller_id, StreamKey(r.category, r.symbol, r.interval), r.expires_at) for r in rows]

    async def leases(self, now: datetime) -> list[tuple[str, StreamKey, datetime]]:
        """Unexpired leases (expired ones are deleted on the way)."""
        return await asyncio.to_thread(self._leases, now)
