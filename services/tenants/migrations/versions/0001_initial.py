"""Tenants, users, invites, sessions, API tokens, settings, templates, credential references and the
audit trail; the service's database role; row-level security on every tenant-owned table.

The role `<schema>_app` is NOLOGIN: the service's connections `SET LOCAL ROLE` to it in every
transaction (rls.py), so RLS applies even when the login user is a superuser (which bypasses RLS).
It may INSERT and SELECT the audit trail but never UPDATE or DELETE it. Three SECURITY DEFINER
functions answer the only questions asked before a tenant is known (which tenant owns this email,
refresh token or invite), returning a tenant id and nothing else. RLS is not FORCEd: the table
owner (the migrating user, who owns those functions) is not restricted, and the service never acts as
the owner.
"""

from alembic import context, op

revision = "0001"
down_revision = None

TENANT_TABLES = (
    "app_user",
    "invite",
    "refresh_token",
    "api_token",
    "tenant_settings",
    "saved_template",
    "exchange_credentials",
    "audit_event",
)

TABLES = """
create table tenant (
  id text primary key,
  name text not null,
  create_time timestamptz not null,
  purge_time timestamptz
);
create table app_user (
  id text primary key,
  tenant_id text not null,
  email text not null unique,
  display_name text not null,
  role text not null,
  password_hash text not null,
  disabled boolean not null default false,
  create_time timestamptz not null,
  last_login_time timestamptz,
  failed_logins integer not null default 0,
  locked_until timestamptz,
  totp_secret text,
  totp_pending text,
  totp_last_step bigint not null default 0,
  recovery_codes json not null default '[]'
);
create index ix_app_user_tenant on app_user (tenant_id);
create table invite (
  id text primary key,
  tenant_id text not null,
  email text not null,
  role text not null,
  new_tenant boolean not null default false,
  token_hash text not null unique,
  created_by_user_id text not null,
  create_time timestamptz not null,
  expire_time timestamptz not null,
  use_time timestamptz
);
create index ix_invite_tenant on invite (tenant_id);
create table refresh_token (
  id text primary key,
  tenant_id text not null,
  user_id text not null,
  family_id text not null,
  token_hash text not null unique,
  create_time timestamptz not null,
  expire_time timestamptz not null,
  use_time timestamptz,
  revoke_time timestamptz
);
create index ix_refresh_token_family on refresh_token (tenant_id, family_id);
create index ix_refresh_token_user on refresh_token (tenant_id, user_id);
create table api_token (
  id text primary key,
  tenant_id text not null,
  user_id text not null,
  name text not null,
  role text not null,
  token_prefix text not null,
  token_hash text not null unique,
  create_time timestamptz not null,
  expire_time timestamptz,
  last_used_time timestamptz,
  revoke_time timestamptz
);
create index ix_api_token_tenant on api_token (tenant_id, create_time);
create table tenant_settings (
  tenant_id text primary key,
  default_risk_limits json not null default '{}',
  notifications json not null default '{}',
  session_lifetime_seconds integer not null,
  require_totp boolean not null default false,
  update_time timestamptz not null
);
create table saved_template (
  tenant_id text not null,
  strategy_id text not null,
  name text not null,
  description text not null default '',
  "values" json not null default '{}',
  create_time timestamptz not null,
  primary key (tenant_id, strategy_id, name)
);
create table exchange_credentials (
  tenant_id text primary key,
  vault_path text not null,
  vault_version integer not null,
  masked_api_key text not null,
  environment text not null,
  permissions json not null default '[]',
  read_only boolean not null default false,
  allowed_ips json not null default '[]',
  validation text not null,
  validation_message text not null default '',
  validate_time timestamptz not null,
  update_time timestamptz not null,
  key_expire_time timestamptz
);
create table audit_event (
  id text primary key,
  tenant_id text not null,
  sequence bigint not null,
  occur_time timestamptz not null,
  record_time timestamptz not null,
  actor_kind text not null,
  actor_id text not null,
  actor_email text not null default '',
  action text not null,
  target_type text not null default '',
  target_id text not null default '',
  details json not null default '{}',
  source_service text not null,
  client_ip text not null default '',
  trace_id text not null default '',
  idempotency_key text,
  prev_hash text not null,
  hash text not null,
  unique (tenant_id, sequence),
  unique (tenant_id, idempotency_key)
);
"""


def app_role(schema: str) -> str:
    return f"{schema}_app"


def upgrade() -> None:
    schema = context.config.attributes["schema"]
    role = app_role(schema)
    op.execute(TABLES)
    op.execute(
        f"""
        do $$ begin
          if not exists (select from pg_roles where rolname = '{role}') then
            create role "{role}" nologin;
          end if;
        end $$;
        grant usage on schema "{schema}" to "{role}";
        grant select, insert, update, delete on tenant, app_user, invite, refresh_token, api_token,
          tenant_settings, saved_template, exchange_credentials to "{role}";
        grant select, insert on audit_event to "{role}";
        """
    )
    # A tenant sees its own row of `tenant` and its own rows elsewhere, and can write no other.
    op.execute(
        """
        alter table tenant enable row level security;
        create policy tenant_isolation on tenant
          using (id = current_setting('app.tenant_id', true))
          with check (id = current_setting('app.tenant_id', true));
        """
    )
    for table in TENANT_TABLES:
        op.execute(
            f"""
            alter table {table} enable row level security;
            create policy tenant_isolation on {table}
              using (tenant_id = current_setting('app.tenant_id', true))
              with check (tenant_id = current_setting('app.tenant_id', true));
            """
        )
    for name, table, column in (
        ("tenant_of_email", "app_user", "email"),
        ("tenant_of_refresh_token", "refresh_token", "token_hash"),
        ("tenant_of_invite", "invite", "token_hash"),
        ("tenant_of_user", "app_user", "id"),  # platform admins acting on another tenant's user
    ):
        op.execute(
            f"""
            create function {name}(needle text) returns text
              language sql stable security definer
              set search_path = "{schema}", pg_temp
              as $$ select tenant_id from {table} where {column} = needle $$;
            revoke all on function {name}(text) from public;
            grant execute on function {name}(text) to "{role}";
            """
        )
