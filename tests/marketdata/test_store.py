"""Candle history in PostgreSQL: what is written is what is read back, to the last digit, and a
candle written again replaces the earlier version."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from services.common.db import make_engine, migrate
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.server import MIGRATIONS
from services.marketdata.store import Store
from tests.helpers.infra import Infra


def candle(key: StreamKey, minute: int, price: Decimal) -> Candle:
    start = minute * 60_000
    return Candle(key, start, start + 59_999, price, price, price, price, price, price, True)


@pytest.fixture
def store(infra: Infra) -> Iterator[Store]:
    schema = f"md_{uuid.uuid4().hex[:10]}"
    migrate(MIGRATIONS, infra.postgres.url, schema)
    engine = make_engine(infra.postgres.url, schema)
    yield Store(engine)
    engine.dispose()


async def test_candles_round_trip_exactly_and_a_rewrite_replaces(store: Store) -> None:
    # Exponent notation, many digits, a negative, and text that COPY would misread unescaped.
    odd = StreamKey("linear", "A\tB\\N\nC", "1")
    plain = StreamKey("linear", "BTCUSDT", "1")
    tiny, big, negative, long = (
        Decimal(v) for v in ("0.00000001", "1E+3", "-2.5", "12345678901234567890.123456789")
    )
    written = [
        Candle(odd, 0, 59_999, tiny, big, negative, long, Decimal("0"), Decimal("7"), True),
        *[candle(plain, i, Decimal(f"{i}.5")) for i in range(500)],
    ]
    await store.upsert_candles(written)
    assert await store.candles(odd, 0, 60_000, 10) == written[:1]
    assert await store.candles(plain, 0, 500 * 60_000, 1000) == written[1:]

    rewritten = candle(plain, 1, Decimal("9"))
    await store.upsert_candles([rewritten])
    assert await store.candles(plain, 60_000, 120_000, 10) == [rewritten]
    assert await store.bounds(plain) == (0, 499 * 60_000)
