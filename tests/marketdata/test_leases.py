"""Subscription leases: concurrent replacements by one caller end with exactly one of them stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from services.common.db import make_engine, migrate
from services.marketdata.domain import StreamKey
from services.marketdata.server import MIGRATIONS
from services.marketdata.store import Store
from tests.helpers.infra import Infra


async def test_concurrent_lease_replacements_of_one_caller_do_not_collide(infra: Infra) -> None:
    schema = f"md_{uuid.uuid4().hex[:10]}"
    migrate(MIGRATIONS, infra.postgres.url, schema)
    engine = make_engine(infra.postgres.url, schema, pool_size=10)
    store = Store(engine)
    expires = datetime.now(UTC) + timedelta(minutes=2)
    sets = [[StreamKey("linear", f"SYM{n}USDT", "1"), StreamKey("linear", "SOLUSDT", "5")] for n in range(8)]
    await asyncio.gather(*(store.replace_lease("strategy-0", keys, expires) for keys in sets))
    leases = await store.leases(datetime.now(UTC))
    held = {key for caller, key, _ in leases if caller == "strategy-0"}
    assert held in [set(keys) for keys in sets], "the stored lease must be one whole replacement"
    engine.dispose()
