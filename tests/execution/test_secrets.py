"""A tenant's exchange secret never leaves Vault and the service's memory: not in a log record (at
every level, pybit's and urllib3's included), not in a NATS message the service publishes, not in a
row of its schema; also on the error paths (a reply lost after the exchange took the order)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import text

from services.exchangesim.app import Simulator
from tests.execution.helpers import Harness, entry, fault, new_tenant, outcome, publish


async def test_the_exchange_secret_is_in_no_log_message_or_row(
    harness: Harness, sim: Simulator, symbol: str, caplog: pytest.LogCaptureFixture
) -> None:
    published: list[bytes] = []

    async def seen(msg: Any) -> None:
        published.append(msg.subject.encode() + b" " + msg.data)

    subscription = await harness.bus.client.subscribe("exec.>", cb=seen)
    caplog.set_level(logging.DEBUG)
    tenant = await new_tenant(harness, symbol)
    await fault(sim, kind="accept_timeout", delay_ms=2500, count=1, path="/v5/order/create")
    signal = entry(sim, tenant)
    await publish(harness.bus, signal)
    assert (await outcome(harness, tenant, signal.id, within=30)).outcome == "ORDERED"
    await subscription.unsubscribe()

    secret = tenant.key.secret
    assert caplog.records and published
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert tenant.tenant_id in logged  # the capture does see the tenant's own records
    assert secret not in logged
    assert any(tenant.tenant_id.encode() in m for m in published)
    assert not [m for m in published if secret.encode() in m]

    schema = harness.execution.settings.execution_db_schema

    def every_row(session: Any) -> list[str]:
        tables = session.execute(
            text("select table_name from information_schema.tables where table_schema = :s"), {"s": schema}
        ).scalars()
        return [
            str(row)
            for table in list(tables)
            for row in session.execute(text(f'select t::text from "{schema}"."{table}" t')).scalars()
        ]

    rows = await harness.execution.store.run(every_row)
    assert any(tenant.tenant_id in row for row in rows)  # the dump does see the tenant's rows
    assert not [row for row in rows if secret in row]
