"""Open orders counted per (tenant, mode) through an index.

GetAccountSummary counts a tenant's open orders on every overview refresh; without this index the
count reads every order the tenant ever placed (30 ms at 100,000 orders, growing with history). With
it, the count probes the few open statuses only (bench/dashboard.py, docs/decisions/0042).
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute(
        "create index if not exists exec_order_tenant_mode_status on exec_order (tenant_id, mode, status)"
    )


def downgrade() -> None:
    op.execute("drop index if exists exec_order_tenant_mode_status")
