"""Orders, fills, funding, positions, wallet history, risk limits, kill switches, risk events, signal
outcomes, bots and accounts of the execution service.

The unique keys are the idempotency guarantees: one order per (tenant, orderLinkId) and per
(tenant, Bybit orderId), one fill per (tenant, execId), one outcome per (tenant, signal).
"""

from alembic import op

revision = "0001"
down_revision = None

TABLES = """
create table exec_order (
  id text primary key,
  tenant_id text not null,
  bot_id text not null default '',
  signal_id text not null default '',
  order_link_id text not null default '',
  exchange_order_id text not null default '',
  category text not null,
  symbol text not null,
  side text not null,
  order_type text not null,
  time_in_force text not null,
  qty numeric not null,
  price numeric,
  reduce_only boolean not null default false,
  take_profit numeric,
  stop_loss numeric,
  status text not null,
  reject_reason text not null default '',
  cum_exec_qty numeric not null default 0,
  cum_exec_value numeric not null default 0,
  cum_exec_fee numeric not null default 0,
  fee_currency text not null default '',
  avg_price numeric,
  leaves_qty numeric not null default 0,
  mode text not null,
  external boolean not null default false,
  position_idx integer not null default 0,
  create_type text not null default '',
  create_time timestamptz not null,
  update_time timestamptz not null,
  exchange_update_ms bigint not null default 0,
  revision integer not null default 0
);
create index exec_order_tenant_time on exec_order (tenant_id, create_time desc);
create unique index exec_order_link on exec_order (tenant_id, order_link_id) where order_link_id <> '';
create unique index exec_order_exchange_id on exec_order (tenant_id, exchange_order_id)
  where exchange_order_id <> '';

create table exec_fill (
  tenant_id text not null,
  exec_id text not null,
  bot_id text not null default '',
  order_id text not null default '',
  exchange_order_id text not null default '',
  order_link_id text not null default '',
  category text not null,
  symbol text not null,
  side text not null,
  exec_price numeric not null,
  exec_qty numeric not null,
  exec_value numeric not null,
  exec_fee numeric not null,
  fee_rate numeric not null,
  fee_currency text not null default '',
  is_maker boolean not null default false,
  closed_size numeric not null default 0,
  realized_pnl numeric not null default 0,
  exec_time timestamptz not null,
  mode text not null,
  external boolean not null default false,
  seq bigint not null default 0,
  primary key (tenant_id, exec_id)
);
create index exec_fill_tenant_time on exec_fill (tenant_id, exec_time desc);
create index exec_fill_symbol on exec_fill (tenant_id, symbol, seq);

create table exec_funding (
  tenant_id text not null,
  exec_id text not null,
  symbol text not null,
  amount numeric not null,
  exec_time timestamptz not null,
  mode text not null,
  primary key (tenant_id, exec_id)
);

create table exec_position (
  tenant_id text not null,
  category text not null,
  symbol text not null,
  mode text not null,
  bot_id text not null default '',
  side text not null default '',
  size numeric not null default 0,
  entry_price numeric not null default 0,
  mark_price numeric not null default 0,
  leverage numeric not null default 1,
  position_value numeric not null default 0,
  unrealized_pnl numeric not null default 0,
  take_profit numeric,
  stop_loss numeric,
  liq_price numeric,
  position_idx integer not null default 0,
  book_size numeric not null default 0,
  book_avg_price numeric not null default 0,
  book_realized_pnl numeric not null default 0,
  book_last_seq bigint not null default 0,
  open_time timestamptz,
  update_time timestamptz not null,
  primary key (tenant_id, category, symbol, mode)
);

create table exec_wallet (
  id bigserial primary key,
  tenant_id text not null,
  mode text not null,
  time timestamptz not null,
  total_equity numeric not null,
  total_wallet_balance numeric not null,
  total_available_balance numeric not null,
  total_initial_margin numeric not null,
  total_maintenance_margin numeric not null,
  total_perp_upl numeric not null,
  coins json not null
);
create index exec_wallet_tenant_time on exec_wallet (tenant_id, time desc);

create table exec_risk_limits (
  tenant_id text not null,
  bot_id text not null default '',
  max_position_notional numeric,
  max_open_positions integer,
  max_leverage numeric,
  daily_loss_limit numeric,
  max_orders_per_minute integer,
  update_time timestamptz not null,
  updated_by text not null default '',
  primary key (tenant_id, bot_id)
);

create table exec_kill_switch (
  scope text not null,
  tenant_id text not null default '',
  bot_id text not null default '',
  engaged boolean not null,
  reason text not null default '',
  changed_by text not null default '',
  change_time timestamptz not null,
  primary key (scope, tenant_id, bot_id)
);

create table exec_risk_event (
  id text primary key,
  tenant_id text not null,
  bot_id text not null default '',
  signal_id text not null default '',
  order_id text not null default '',
  category text not null default '',
  symbol text not null default '',
  kind text not null,
  reason text not null,
  message text not null default '',
  details json not null,
  mode text not null,
  occur_time timestamptz not null
);
create index exec_risk_event_tenant_time on exec_risk_event (tenant_id, occur_time desc);

create table exec_signal (
  tenant_id text not null,
  signal_id text not null,
  bot_id text not null default '',
  outcome text not null,
  order_id text not null default '',
  reason text not null default '',
  record_time timestamptz not null,
  primary key (tenant_id, signal_id)
);

create table exec_bot (
  bot_id text primary key,
  tenant_id text not null,
  category text not null default '',
  symbol text not null default '',
  mode text not null,
  capital_allocation numeric,
  risk_per_trade numeric,
  leverage numeric,
  max_position_notional numeric,
  status text not null default '',
  deleted boolean not null default false,
  update_time timestamptz not null
);
create index exec_bot_tenant on exec_bot (tenant_id);

create table exec_account (
  tenant_id text primary key,
  active boolean not null default true,
  vault_version integer not null default 0,
  last_reconcile_time timestamptz,
  last_exec_time_ms bigint not null default 0
);
"""


def upgrade() -> None:
    op.execute(TABLES)


def downgrade() -> None:
    for table in (
        "exec_account",
        "exec_bot",
        "exec_signal",
        "exec_risk_event",
        "exec_kill_switch",
        "exec_risk_limits",
        "exec_wallet",
        "exec_position",
        "exec_funding",
        "exec_fill",
        "exec_order",
    ):
        op.execute(f"drop table if exists {table}")
