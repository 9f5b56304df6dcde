"""An entry order keeps its signal's stop and target distances and whether the position's levels were
moved to the fill (decision 0037). The partial index holds only entries still waiting for that, so the
check after every reconciliation reads a handful of rows, not the tenant's history."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("exec_order", sa.Column("stop_distance", sa.Numeric, nullable=True))
    op.add_column("exec_order", sa.Column("target_distance", sa.Numeric, nullable=True))
    op.add_column("exec_order", sa.Column("bracket_time", sa.DateTime(timezone=True), nullable=True))
    op.add_column("exec_order", sa.Column("bracket_note", sa.String, nullable=False, server_default=""))
    op.execute(
        "create index if not exists exec_order_brackets_pending on exec_order (tenant_id, mode)"
        " where bracket_time is null and (stop_distance is not null or target_distance is not null)"
    )


def downgrade() -> None:
    op.execute("drop index if exists exec_order_brackets_pending")
    for column in ("bracket_note", "bracket_time", "target_distance", "stop_distance"):
        op.drop_column("exec_order", column)
