"""PostgreSQL through SQLModel: one schema per service, and Alembic migrations per service.

Each service owns `services/<name>/migrations/` (an Alembic script folder whose env.py only calls
`run_migrations_env`). Migrations run at start-up (`migrate`); the version table lives in the
service's own schema, so services migrate independently in one cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Engine, Table, TextClause, text
from sqlalchemy.dialects import postgresql
from sqlmodel import MetaData, create_engine


def sqlalchemy_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` forms and pick the psycopg2 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def make_engine(url: str, schema: str, *, pool_size: int = 5) -> Engine:
    """An engine whose connections see `schema` first, so models need no schema prefix."""
    return create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"options": f"-csearch_path={schema},public"},
    )


def unnest_insert(table: Table, names: list[str], on_conflict: str = "") -> TextClause:
    """A multi-row INSERT of `names` with one array parameter per column (`insert ... select from
    unnest(...)`), parameters from `columns`: the driver adapts a column's list in one go and the
    statement is compiled once, where an executemany is a round trip per row and a multi-row VALUES
    renders every value of every row (most of writing a busy candle's orders or signals).
    `on_conflict` is the statement's ON CONFLICT clause, if any."""
    dialect = postgresql.dialect()
    arrays = ", ".join(f"cast(:{n} as {table.c[n].type.compile(dialect=dialect)}[])" for n in names)
    return text(f"insert into {table.name} ({', '.join(names)}) select * from unnest({arrays}) {on_conflict}")


def columns(rows: list[Any], names: list[str]) -> dict[str, list[Any]]:
    """Rows (dicts or objects) as one list per column, the parameters of an `unnest_insert`."""
    if rows and isinstance(rows[0], dict):
        return {n: [row[n] for row in rows] for n in names}
    return {n: [getattr(row, n) for row in rows] for n in names}


def alembic_config(migrations: Path, url: str, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def migrate(migrations: Path, url: str, schema: str, revision: str = "head") -> None:
    """Bring `schema` to `revision` with the scripts in `migrations` (idempotent; run at every start).

    Replicas that start together (a first install, a rollout) take turns on a session advisory lock
    per schema; without it two of them create the same tables at once and one fails its start."""
    engine = make_engine(url, schema, pool_size=1)
    key = {"key": f"tradebot.migrate.{schema}"}
    try:
        with engine.connect() as lock:
            lock.execute(text("select pg_advisory_lock(hashtext(:key))"), key)
            try:
                lock.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                lock.commit()
                command.upgrade(alembic_config(migrations, url, schema), revision)
            finally:
                lock.execute(text("select pg_advisory_unlock(hashtext(:key))"), key)
                lock.commit()
    finally:
        engine.dispose()


def run_migrations_env(metadata: MetaData | None) -> None:
    """Body of every service's migrations/env.py (online mode only: we always have a database)."""
    config = context.config
    schema = config.attributes["schema"]
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "", schema, pool_size=1)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=False,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
