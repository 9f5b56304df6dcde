"""Rows to API messages, in one place, so no handler can leak a column it should not (hashes, TOTP
ciphertext, Vault paths never appear here)."""

from __future__ import annotations

from tradebot.tenants.v1 import events_pb2
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common import convert as common_convert
from services.common.context import Role
from services.tenants import models

# Times convert the way every service converts them; the handlers reach them through this module.
ts = common_convert.timestamp
to_datetime = common_convert.to_datetime
time_range = common_convert.time_range

ROLE_TO_PB = {
    Role.OWNER: pb.ROLE_OWNER,
    Role.TRADER: pb.ROLE_TRADER,
    Role.VIEWER: pb.ROLE_VIEWER,
    Role.ADMIN: pb.ROLE_ADMIN,
}
PB_TO_ROLE = {value: key for key, value in ROLE_TO_PB.items()}


def user(row: models.User) -> pb.User:
    return pb.User(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        display_name=row.display_name,
        role=ROLE_TO_PB[Role(row.role)],
        totp_enabled=row.totp_secret is not None,
        disabled=row.disabled,
        create_time=ts(row.create_time),
        last_login_time=ts(row.last_login_time),
    )


def tenant(row: models.Tenant) -> pb.Tenant:
    return pb.Tenant(id=row.id, name=row.name, create_time=ts(row.create_time), purge_time=ts(row.purge_time))


def invite(row: models.Invite) -> pb.Invite:
    return pb.Invite(
        id=row.id,
        email=row.email,
        role=ROLE_TO_PB[Role(row.role)],
        new_tenant=row.new_tenant,
        tenant_id="" if row.new_tenant else row.tenant_id,
        created_by_user_id=row.created_by_user_id,
        create_time=ts(row.create_time),
        expire_time=ts(row.expire_time),
    )


def api_token(row: models.ApiToken) -> pb.ApiToken:
    return pb.ApiToken(
        id=row.id,
        name=row.name,
        role=ROLE_TO_PB[Role(row.role)],
        user_id=row.user_id,
        token_prefix=row.token_prefix,
        create_time=ts(row.create_time),
        expire_time=ts(row.expire_time),
        last_used_time=ts(row.last_used_time),
        revoke_time=ts(row.revoke_time),
    )


def credentials(row: models.ExchangeCredentials | None, venue: str = "") -> pb.ExchangeCredentialsStatus:
    """`venue` is where the platform sends the key's requests (its BYBIT_ENV), which on the simulator
    differs from the environment the client chose."""
    if row is None:
        return pb.ExchangeCredentialsStatus(present=False)
    return pb.ExchangeCredentialsStatus(
        present=True,
        masked_api_key=row.masked_api_key,
        environment=pb.ExchangeEnvironment.Value(row.environment),
        permissions=row.permissions,
        read_only=row.read_only,
        allowed_ips=row.allowed_ips,
        validation=pb.CredentialsValidation.Value(row.validation),
        validation_message=row.validation_message,
        validate_time=ts(row.validate_time),
        update_time=ts(row.update_time),
        key_expire_time=ts(row.key_expire_time),
        version=row.vault_version,
        venue=venue,
    )


def audit_event(row: models.AuditEntry) -> events_pb2.AuditEvent:
    return events_pb2.AuditEvent(
        id=row.id,
        tenant_id=row.tenant_id,
        sequence=row.sequence,
        occur_time=ts(row.occur_time),
        record_time=ts(row.record_time),
        actor_kind=events_pb2.ActorKind.Value(row.actor_kind),
        actor_id=row.actor_id,
        actor_email=row.actor_email,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        details=row.details,
        source_service=row.source_service,
        client_ip=row.client_ip,
        trace_id=row.trace_id,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
