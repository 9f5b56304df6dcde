"""Candle history, per-stream publishing cursors and subscription leases."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _stream_columns() -> list[sa.Column]:
    return [
        sa.Column("category", sa.String, primary_key=True),
        sa.Column("symbol", sa.String, primary_key=True),
        sa.Column("interval", sa.String, primary_key=True),
    ]


def upgrade() -> None:
    op.create_table(
        "candle",
        *_stream_columns(),
        sa.Column("start_ms", sa.BigInteger, primary_key=True),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        *(
            sa.Column(name, sa.Numeric, nullable=False)
            for name in ("open", "high", "low", "close", "volume", "turnover")
        ),
    )
    op.create_table(
        "stream_cursor",
        *_stream_columns(),
        sa.Column("published_start_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "subscription_lease",
        sa.Column("caller_id", sa.String, primary_key=True),
        *_stream_columns(),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
