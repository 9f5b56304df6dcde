"""The PostgreSQL and Vault helpers against the real servers."""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path

import hvac
import pytest
from sqlalchemy import text

from services.common.db import make_engine, migrate
from services.common.settings import ServiceSettings
from services.common.vault import SecretStore, vault_client
from tests.helpers.infra import Infra

MIGRATIONS = Path(__file__).parent / "sample_migrations"


def test_migrations_create_the_schema_are_idempotent_and_keep_their_version_in_it(infra: Infra) -> None:
    schema = f"svc_{uuid.uuid4().hex[:8]}"
    migrate(MIGRATIONS, infra.postgres.url, schema)
    migrate(MIGRATIONS, infra.postgres.url, schema)  # a restart runs them again: nothing changes
    engine = make_engine(infra.postgres.url, schema)
    with engine.begin() as conn:
        conn.execute(
            text("insert into ledger_entry (amount) values (:a)"), {"a": Decimal("0.000000000000000001")}
        )
        assert conn.execute(text("select amount from ledger_entry")).scalar_one() == Decimal("1E-18")
        version = conn.execute(text(f'select version_num from "{schema}".alembic_version')).scalar_one()
        tables = conn.execute(
            text("select table_name from information_schema.tables where table_schema = :s"), {"s": schema}
        ).scalars()
        assert set(tables) == {"ledger_entry", "alembic_version"}
    assert version == "0001"
    engine.dispose()


def test_replicas_starting_together_migrate_one_after_another(infra: Infra) -> None:
    """Several replicas of a service (tenants, dashboard) start at once on a first install: each runs
    the migrations at start, and none may fail on a table or schema another is creating."""
    schema = f"svc_{uuid.uuid4().hex[:8]}"
    # Processes, as replicas are (Alembic's migration context is one per process).
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = [pool.submit(migrate, MIGRATIONS, infra.postgres.url, schema) for _ in range(4)]
        errors = [run.exception(timeout=60) for run in runs]
    assert errors == [None] * 4
    engine = make_engine(infra.postgres.url, schema)
    with engine.begin() as conn:
        assert conn.execute(text(f'select version_num from "{schema}".alembic_version')).scalars().all() == [
            "0001"
        ]
    engine.dispose()


def _store(infra: Infra, service: str) -> SecretStore:
    settings = ServiceSettings(vault_addr=infra.vault.addr, vault_token=infra.vault.service_tokens[service])
    return SecretStore(vault_client(settings))


def test_only_execution_reads_exchange_keys_and_rotation_keeps_old_versions(infra: Infra) -> None:
    path = f"tenants/{uuid.uuid4().hex}/exchange"
    tenants, execution = _store(infra, "tenants"), _store(infra, "execution")
    first = tenants.put(path, {"api_key": "key-1", "api_secret": "secret-1"})
    second = tenants.put(path, {"api_key": "key-2", "api_secret": "secret-2"})
    assert second == first + 1
    assert execution.read(path) == {"api_key": "key-2", "api_secret": "secret-2"}
    assert execution.read(path, version=first) == {"api_key": "key-1", "api_secret": "secret-1"}
    with pytest.raises(hvac.exceptions.Forbidden):
        tenants.read(path)
    for other in ("marketdata", "strategy", "dashboard"):
        with pytest.raises(hvac.exceptions.Forbidden):
            _store(infra, other).read(path)
        with pytest.raises(hvac.exceptions.Forbidden):
            _store(infra, other).put(path, {"api_key": "planted"})
    with pytest.raises(hvac.exceptions.Forbidden):
        execution.put(path, {"api_key": "overwrite"})
    tenants.destroy(path)
    assert execution.read(path) is None
    assert execution.read(path, version=first) is None
