"""The service's own tables (schema `strategy` by default): bots, the signals they emitted, the
position updates execution reported for them, and backtests.

The tables live in their own metadata, so importing this module next to another service's models (as
the test suite does) can never mix two services' tables up.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Column, Field, MetaData, SQLModel

metadata = MetaData()


class StrategyModel(SQLModel, registry=registry(metadata=metadata)):
    pass


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=nullable))


class BotRow(StrategyModel, table=True):
    """One bot. `parameters` is the full resolved set; `overrides` what the caller gave on top of the
    template (UpdateBot's "parameters" replaces them, "parameters.<name>" changes one)."""

    __tablename__ = "bot"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name"),
        sa.UniqueConstraint("tenant_id", "request_id"),
    )

    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    name: str
    strategy_id: str
    strategy_version: str
    template: str
    parameters: dict[str, Any] = Field(sa_column=Column(sa.JSON, nullable=False))
    overrides: dict[str, Any] = Field(sa_column=Column(sa.JSON, nullable=False))
    category: str  # Bybit category: "spot" or "linear"
    symbol: str
    interval: str  # Bybit interval string, e.g. "60"
    mode: str  # "paper" or "live"
    capital_allocation: Decimal = Field(sa_type=sa.Numeric)
    status: str = Field(index=True)  # created, running, paused, stopped
    status_message: str = ""
    created_by: str
    request_id: str | None = None
    # Start of the first candle the current run evaluates; candles before it only warm indicators up.
    active_from_ms: int | None = Field(default=None, sa_type=sa.BigInteger)
    create_time: datetime = _ts(False)
    update_time: datetime = _ts(False)
    start_time: datetime | None = _ts()
    stop_time: datetime | None = _ts()


class SignalRow(StrategyModel, table=True):
    """A published signal; the id is derived from (bot, candle, action), so a repeat is a no-op insert."""

    __tablename__ = "signal"
    __table_args__ = (sa.Index("signal_tenant_candle", "tenant_id", "candle_start_ms"),)

    id: str = Field(primary_key=True)
    tenant_id: str
    bot_id: str = Field(index=True)
    candle_start_ms: int = Field(sa_type=sa.BigInteger)
    action: int
    payload: bytes = Field(sa_type=sa.LargeBinary)  # the tradebot.strategy.v1.Signal message


class PositionUpdateRow(StrategyModel, table=True):
    """What execution reported about a bot's position, and after which candle the bank applied it, so
    a restart replays candles and position updates in the same order (exact state after a crash)."""

    __tablename__ = "position_update"

    event_id: str = Field(primary_key=True)
    bot_id: str = Field(index=True)
    after_candle_ms: int = Field(sa_type=sa.BigInteger)
    # "fill": entry filled at `price`; "flat": position closed on the exchange; "unplaced": execution
    # skipped the bot's newest ENTRY or REVERSE or the exchange rejected it (event_id: the risk event's)
    kind: str
    price: Decimal | None = Field(default=None, sa_type=sa.Numeric)


class GroupCursorRow(StrategyModel, table=True):
    """Start of the newest candle whose decisions a group has published (or withheld, for paused bots):
    after a restart, candles up to it only rebuild state; later ones are evaluated as live."""

    __tablename__ = "group_cursor"

    group_id: str = Field(primary_key=True)
    evaluated_ms: int = Field(sa_type=sa.BigInteger)


class BacktestRow(StrategyModel, table=True):
    __tablename__ = "backtest"
    __table_args__ = (sa.Index("backtest_tenant_created", "tenant_id", "create_time"),)

    id: str = Field(primary_key=True)
    tenant_id: str
    created_by: str
    strategy_id: str
    symbol: str
    status: int  # tradebot.strategy.v1.BacktestStatus
    error_message: str = ""
    config: bytes = Field(sa_type=sa.LargeBinary)  # BacktestConfig, parameters resolved
    metrics: bytes | None = Field(default=None, sa_type=sa.LargeBinary)  # BacktestMetrics
    report: bytes | None = Field(default=None, sa_type=sa.LargeBinary)  # BacktestReport
    create_time: datetime = _ts(False)
    finish_time: datetime | None = _ts()
