"""Tenants service wiring: users, roles, login, tokens, 2FA, exchange keys in Vault, settings, audit.

Migrations run at start; the servicer is composed of one handler class per area (rpc_*.py); GetJwks
publishes the user-token key and every platform service's identity key.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import hvac
from pydantic import Field
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.common.db import migrate
from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings
from services.common.signing import USER_KEY, TransitSigner, is_signing_key
from services.common.vault import SecretStore, vault_client
from services.tenants.audit_feed import AuditFeed
from services.tenants.bootstrap import invite_first_admin
from services.tenants.core import Deps
from services.tenants.data_partners import DataPartners, Metadata
from services.tenants.lockout import UnknownEmails
from services.tenants.mailer import Mailer
from services.tenants.rls import Database
from services.tenants.rpc_audit import AuditRpcs
from services.tenants.rpc_people import PeopleRpcs
from services.tenants.rpc_sessions import SessionRpcs
from services.tenants.rpc_settings import SettingsRpcs
from services.tenants.tokens import TokenIssuer
from services.tenants.totp import TotpVault

_SERVICE = "/tradebot.tenants.v1.TenantsService/"
# Calls that carry their own credential (an invite, a password, a refresh token) or none at all.
PUBLIC_METHODS = {_SERVICE + name for name in ("SignUp", "Login", "RefreshToken", "GetJwks")}
JWKS_CACHE_SECONDS = 300
MIGRATIONS = Path(__file__).parent / "migrations"


class Settings(ServiceSettings):
    db_schema: str = Field("tenants", pattern="^[a-z_][a-z0-9_]{0,50}$", description="PostgreSQL schema")
    smtp_host: str = Field("", description="SMTP server for invitations; unset writes them to INVITE_OUTBOX")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port")
    smtp_sender: str = Field("Tradebot <no-reply@tradebot.local>", description="From address of emails")
    smtp_starttls: bool = Field(False, description="Upgrade the SMTP connection with STARTTLS")
    invite_outbox: str = Field(".data/outbox", description="Folder for emails when SMTP_HOST is unset")
    admin_email: str = Field("", description="Invite this person as the first platform ADMIN at start")
    invite_link_base: str = Field(
        "http://127.0.0.1:8501/?invite=", description="Sign-up link; the invite token is appended"
    )
    strategy_addr: str = Field(
        "", description="host:port of strategy, for tenants' data export and deletion; unset: not deployed"
    )
    execution_addr: str = Field(
        "", description="host:port of execution, for tenants' data export and deletion; unset: not deployed"
    )
    tenants_audit_durable: str = Field(
        "tenants-audit",
        description="Prefix of the durable consumers copying bot and kill-switch events into the audit trail",
    )


def platform_public_keys(client: hvac.Client) -> list[dict[str, str]]:
    """Users' token key and every platform service's identity key, as JWKs (with the Ed25519 keys of
    older installations while they exist: tokens they signed, such as API tokens, stay valid)."""
    names = client.secrets.transit.list_keys()["data"]["keys"]
    signers = sorted(name for name in names if is_signing_key(name))
    return [jwk for name in signers for jwk in TransitSigner(client, name).public_keys()]


class TenantsServicer(SessionRpcs, PeopleRpcs, SettingsRpcs, AuditRpcs, rpc.TenantsServiceServicer):
    def __init__(self, deps: Deps, vault: hvac.Client) -> None:
        super().__init__(deps)
        self.vault = vault

    async def GetJwks(
        self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJwksResponse:
        keys = await asyncio.to_thread(platform_public_keys, self.vault)
        response = pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in keys])
        response.cache_ttl.FromSeconds(JWKS_CACHE_SECONDS)
        return response


def build_deps(
    settings: Settings, vault: hvac.Client, bus: object = None, identity: Metadata | None = None
) -> Deps:
    """Everything the handlers use, from settings; migrations run first (idempotent). `identity`
    gives the call metadata of this service's own token, for strategy and execution."""
    migrate(MIGRATIONS, settings.database_url, settings.db_schema)
    totp_vault = TotpVault(vault)
    totp_vault.ensure_key()
    return Deps(
        db=Database(settings.database_url, settings.db_schema),
        issuer=TokenIssuer(TransitSigner(vault, USER_KEY)),
        totp_vault=totp_vault,
        secrets=SecretStore(vault),
        mailer=Mailer(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            outbox=Path(settings.invite_outbox),
            link_base=settings.invite_link_base,
        ),
        venue=settings.bybit_venue(),
        bus=bus,  # type: ignore[arg-type]
        unknown_emails=UnknownEmails(),
        partners=DataPartners.of(
            identity, strategy_addr=settings.strategy_addr, execution_addr=settings.execution_addr
        ),
    )


async def setup(runtime: ServiceRuntime) -> None:
    settings: Settings = runtime.settings
    vault = vault_client(settings)
    identity = runtime.credentials.metadata if runtime.credentials else None
    deps = await asyncio.to_thread(build_deps, settings, vault, runtime.bus, identity)
    if settings.admin_email:
        await asyncio.to_thread(invite_first_admin, deps, settings.admin_email)
    runtime.add_servicer(rpc.add_TenantsServiceServicer_to_server, TenantsServicer(deps, vault))
    if runtime.bus is not None:
        AuditFeed(deps.db, runtime.bus, settings.tenants_audit_durable).start()

    async def close() -> None:
        await deps.partners.close()
        deps.db.dispose()

    runtime.on_stop(close)
