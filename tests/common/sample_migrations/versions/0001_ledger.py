"""A one-table schema that exercises the shared migration runner."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("amount", sa.Numeric(36, 18), nullable=False),
    )
