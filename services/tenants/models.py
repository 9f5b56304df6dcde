"""The tenants service's tables. Every tenant-owned row carries `tenant_id`; row-level security
(see migrations/versions/0001_initial.py and rls.py) enforces it inside PostgreSQL as a second wall.

No column ever holds a secret in the clear: passwords are Argon2id hashes, refresh/API/invite tokens
and recovery codes are SHA-256 digests, the TOTP secret is a Vault transit ciphertext, and exchange
credentials live in Vault KV (only a reference and the masked key are kept here).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Column, Field, SQLModel

metadata = SQLModel.metadata


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(sa.DateTime(timezone=True), nullable=nullable))


def _json(default: Any) -> Any:
    return Field(default_factory=default.copy, sa_column=Column(sa.JSON, nullable=False))


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: str = Field(primary_key=True)
    name: str
    create_time: datetime = _ts(False)
    purge_time: datetime | None = _ts()


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    email: str = Field(unique=True)
    display_name: str
    role: str
    password_hash: str
    disabled: bool = False
    create_time: datetime = _ts(False)
    last_login_time: datetime | None = _ts()
    failed_logins: int = 0
    locked_until: datetime | None = _ts()
    totp_secret: str | None = None  # Vault transit ciphertext of the active secret
    totp_pending: str | None = None  # ciphertext of a secret whose enrolment is not confirmed yet
    totp_last_step: int = 0  # last accepted time step: a code is never accepted twice
    recovery_codes: list[str] = _json([])  # SHA-256 digests of unused recovery codes


class Invite(SQLModel, table=True):
    __tablename__ = "invite"
    id: str = Field(primary_key=True)
    # For a new-tenant invite: the id the tenant will get, so the row is tenant-owned like any other.
    tenant_id: str = Field(index=True)
    email: str
    role: str
    new_tenant: bool = False
    token_hash: str = Field(unique=True)
    created_by_user_id: str
    create_time: datetime = _ts(False)
    expire_time: datetime = _ts(False)
    use_time: datetime | None = _ts()


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_token"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    user_id: str = Field(index=True)
    family_id: str = Field(index=True)  # one sign-in session: every rotation stays in its family
    token_hash: str = Field(unique=True)
    create_time: datetime = _ts(False)
    expire_time: datetime = _ts(False)
    use_time: datetime | None = _ts()  # set when rotated; presenting it again is reuse
    revoke_time: datetime | None = _ts()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: str = Field(primary_key=True)
    tenant_id: str = Field(index=True)
    user_id: str = Field(index=True)
    name: str
    role: str
    token_prefix: str
    token_hash: str = Field(unique=True)
    create_time: datetime = _ts(False)
    expire_time: datetime | None = _ts()
    last_used_time: datetime | None = _ts()
    revoke_time: datetime | None = _ts()


class TenantSettings(SQLModel, table=True):
    __tablename__ = "tenant_settings"
    tenant_id: str = Field(primary_key=True)
    default_risk_limits: dict[str, Any] = _json({})
    notifications: dict[str, Any] = _json({})
    session_lifetime_seconds: int
    require_totp: bool = False
    update_time: datetime = _ts(False)


class SavedTemplate(SQLModel, table=True):
    __tablename__ = "saved_template"
    tenant_id: str = Field(primary_key=True)
    strategy_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    description: str = ""
    values: dict[str, Any] = _json({})
    create_time: datetime = _ts(False)


class ExchangeCredentials(SQLModel, table=True):
    __tablename__ = "exchange_credentials"
    tenant_id: str = Field(primary_key=True)
    vault_path: str
    vault_version: int
    masked_api_key: str
    environment: str
    permissions: list[str] = _json([])
    read_only: bool = False
    allowed_ips: list[str] = _json([])
    validation: str
    validation_message: str = ""
    validate_time: datetime = _ts(False)
    update_time: datetime = _ts(False)
    key_expire_time: datetime | None = _ts()


class AuditEntry(SQLModel, table=True):
    """Append-only: the service's database role may INSERT and SELECT here, never UPDATE or DELETE."""

    __tablename__ = "audit_event"
    id: str = Field(primary_key=True)
    tenant_id: str
    sequence: int
    occur_time: datetime = _ts(False)
    record_time: datetime = _ts(False)
    actor_kind: str
    actor_id: str
    actor_email: str = ""
    action: str
    target_type: str = ""
    target_id: str = ""
    details: dict[str, str] = _json({})
    source_service: str
    client_ip: str = ""
    trace_id: str = ""
    idempotency_key: str | None = None
    prev_hash: str
    hash: str
