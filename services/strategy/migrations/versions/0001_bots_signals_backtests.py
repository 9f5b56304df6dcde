"""Bots, signals, position updates, group cursors and backtests."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "bot",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("tenant_id", sa.String, nullable=False, index=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("strategy_id", sa.String, nullable=False),
        sa.Column("strategy_version", sa.String, nullable=False),
        sa.Column("template", sa.String, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("overrides", sa.JSON, nullable=False),
        sa.Column("category", sa.String, nullable=False),
        sa.Column("symbol", sa.String, nullable=False),
        sa.Column("interval", sa.String, nullable=False),
        sa.Column("mode", sa.String, nullable=False),
        sa.Column("capital_allocation", sa.Numeric, nullable=False),
        sa.Column("status", sa.String, nullable=False, index=True),
        sa.Column("status_message", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("request_id", sa.String, nullable=True),
        sa.Column("active_from_ms", sa.BigInteger, nullable=True),
        _ts("create_time", False),
        _ts("update_time", False),
        _ts("start_time"),
        _ts("stop_time"),
        sa.UniqueConstraint("tenant_id", "name"),
        sa.UniqueConstraint("tenant_id", "request_id"),
    )
    op.create_table(
        "signal",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("tenant_id", sa.String, nullable=False),
        sa.Column("bot_id", sa.String, nullable=False, index=True),
        sa.Column("candle_start_ms", sa.BigInteger, nullable=False),
        sa.Column("action", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    op.create_index("signal_tenant_candle", "signal", ["tenant_id", "candle_start_ms"])
    op.create_table(
        "position_update",
        sa.Column("event_id", sa.String, primary_key=True),
        sa.Column("bot_id", sa.String, nullable=False, index=True),
        sa.Column("after_candle_ms", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("price", sa.Numeric, nullable=True),
    )
    op.create_table(
        "group_cursor",
        sa.Column("group_id", sa.String, primary_key=True),
        sa.Column("evaluated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "backtest",
        sa.Column("id", sa.String, primary_key=True),
        sa.Column("tenant_id", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("strategy_id", sa.String, nullable=False),
        sa.Column("symbol", sa.String, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_message", sa.String, nullable=False),
        sa.Column("config", sa.LargeBinary, nullable=False),
        sa.Column("metrics", sa.LargeBinary, nullable=True),
        sa.Column("report", sa.LargeBinary, nullable=True),
        _ts("create_time", False),
        _ts("finish_time"),
    )
    op.create_index("backtest_tenant_created", "backtest", ["tenant_id", "create_time"])
