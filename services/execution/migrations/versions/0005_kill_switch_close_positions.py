"""Kill switches remember whether they close positions, so the closing is retried while engaged
(flatten.py, docs/decisions/0035)."""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        "alter table exec_kill_switch add column if not exists close_positions boolean not null default false"
    )


def downgrade() -> None:
    op.execute("alter table exec_kill_switch drop column if exists close_positions")
