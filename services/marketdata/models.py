"""The service's own tables (schema `marketdata` by default): candle history, the publishing cursor of
each stream, and the subscription leases, so a restart knows what to resume and from where."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


class CandleRow(SQLModel, table=True):
    """A confirmed candle; written by live publishing, gap repair, backfill and GetCandles fills."""

    __tablename__ = "candle"

    category: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    interval: str = Field(primary_key=True)
    start_ms: int = Field(primary_key=True, sa_type=sa.BigInteger)
    end_ms: int = Field(sa_type=sa.BigInteger)
    open: Decimal = Field(sa_type=sa.Numeric)
    high: Decimal = Field(sa_type=sa.Numeric)
    low: Decimal = Field(sa_type=sa.Numeric)
    close: Decimal = Field(sa_type=sa.Numeric)
    volume: Decimal = Field(sa_type=sa.Numeric)
    turnover: Decimal = Field(sa_type=sa.Numeric)


class StreamCursorRow(SQLModel, table=True):
    """Start of the newest candle published on a stream's subject: the stream's memory across restarts."""

    __tablename__ = "stream_cursor"

    category: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    interval: str = Field(primary_key=True)
    published_start_ms: int = Field(sa_type=sa.BigInteger)


class LeaseRow(SQLModel, table=True):
    """One stream held by one caller until `expires_at` (EnsureSubscriptions, StreamCandles)."""

    __tablename__ = "subscription_lease"

    caller_id: str = Field(primary_key=True)
    category: str = Field(primary_key=True)
    symbol: str = Field(primary_key=True)
    interval: str = Field(primary_key=True)
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
