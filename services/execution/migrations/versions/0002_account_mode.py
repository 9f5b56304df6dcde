"""Accounts per (tenant, mode): a tenant's PAPER account (on the simulator) is reconciled and tracked
apart from their LIVE one, so exec_account gains `mode` in its primary key."""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        alter table exec_account add column mode text not null default 'LIVE';
        alter table exec_account drop constraint exec_account_pkey;
        alter table exec_account add primary key (tenant_id, mode);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        delete from exec_account where mode <> 'LIVE';
        alter table exec_account drop constraint exec_account_pkey;
        alter table exec_account drop column mode;
        alter table exec_account add primary key (tenant_id);
        """
    )
