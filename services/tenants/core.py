"""What every RPC handler shares: its dependencies, who the caller is, step-up, and audit entries.

Handlers are plain functions run in a worker thread (`blocking`): the database, Vault and Bybit
clients are synchronous, and a thread keeps them off the event loop. Context variables (the
principal, the trace) follow the call into the thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from opentelemetry import trace
from sqlalchemy.exc import DataError
from sqlmodel import Session

from services.common.bus import Bus
from services.common.bybit import BybitVenue
from services.common.context import ROLE_RANK, Principal, Role, current_principal
from services.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from services.common.vault import SecretStore
from services.tenants import audit, convert, events, totp
from services.tenants.data_partners import DataPartners
from services.tenants.lockout import UnknownEmails
from services.tenants.mailer import Mailer
from services.tenants.models import ApiToken, TenantSettings, User
from services.tenants.rls import Database
from services.tenants.tokens import TokenIssuer

# Calls a user may make before enrolling TOTP when the tenant requires it.
TOTP_SETUP_CALLS = {"EnrollTotp", "ConfirmTotp", "GetMe", "Logout"}
API_TOKEN_TOUCH = timedelta(minutes=1)  # last_used_time is written at most this often per token


@dataclass
class Deps:
    db: Database
    issuer: TokenIssuer
    totp_vault: totp.TotpVault
    secrets: SecretStore
    mailer: Mailer
    venue: BybitVenue
    bus: Bus | None
    unknown_emails: UnknownEmails
    partners: DataPartners = field(default_factory=lambda: DataPartners(None))


@dataclass(frozen=True)
class CallInfo:
    """Facts about the request the audit trail records."""

    method: str
    client_ip: str
    trace_id: str


@dataclass
class Caller:
    principal: Principal
    user: User
    role: Role  # effective role: an API token may grant less than its user's role
    call: CallInfo

    @property
    def tenant_id(self) -> str:
        return self.user.tenant_id

    @property
    def actor_kind(self) -> str:
        if self.principal.api_token:
            return "ACTOR_KIND_API_TOKEN"
        return "ACTOR_KIND_ADMIN" if self.role is Role.ADMIN else "ACTOR_KIND_USER"

    @property
    def actor_id(self) -> str:
        return self.principal.token_id if self.principal.api_token else self.user.id

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value.upper() for r in roles)
            raise PermissionDenied(
                f"this call needs one of the roles {allowed}; you are {self.role.value.upper()}"
            )


def _peer_ip(context: grpc.aio.ServicerContext) -> str:
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]").replace("%5B", "").replace("%5D", "")
    return ""


T = TypeVar("T")


def reject_nul(message: Message, prefix: str = "") -> None:
    """NUL characters cannot be stored (PostgreSQL text) and have no business in any field."""
    for descriptor, value in message.ListFields():
        name = prefix + descriptor.name
        if descriptor.type == descriptor.TYPE_STRING:
            values = value if descriptor.is_repeated else [value]
            if any("\x00" in v for v in values):
                raise InvalidArgument("must not contain NUL characters", field=name)
        elif descriptor.type == descriptor.TYPE_MESSAGE and descriptor.message_type is not None:
            if descriptor.message_type.GetOptions().map_entry:
                for key, item in value.items():
                    if "\x00" in str(key) or (isinstance(item, str) and "\x00" in item):
                        raise InvalidArgument("must not contain NUL characters", field=name)
                    if isinstance(item, Message):
                        reject_nul(item, f"{name}.")
            elif descriptor.is_repeated:
                for item in value:
                    reject_nul(item, f"{name}.")
            else:
                reject_nul(value, f"{name}.")


def blocking(fn: Callable[..., T]) -> Callable[..., Any]:
    """Run a handler in a worker thread and publish the events its committed transactions queued.
    Arguments after the context are passed on (a step of an RPC that also awaits other services)."""

    @functools.wraps(fn)
    async def rpc(self: Any, request: Any, context: grpc.aio.ServicerContext, *args: Any) -> T:
        span = trace.get_current_span().get_span_context()
        call = CallInfo(
            method=fn.__name__,
            client_ip=_peer_ip(context),
            trace_id=format(span.trace_id, "032x") if span.is_valid else "",
        )
        reject_nul(request)
        outbox, token = events.open_outbox()
        try:
            return await asyncio.to_thread(fn, self, request, call, *args)
        except DataError:
            # A value PostgreSQL cannot hold (e.g. a number out of range) that a check did not catch.
            raise InvalidArgument("a field holds a value out of the range this service stores") from None
        finally:
            events.close_outbox(token)
            await events.publish(self.deps.bus, outbox)

    return rpc


class Core:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.db = deps.db

    @staticmethod
    def own_tenant() -> str:
        """The tenant named by the caller's verified token (the transaction to open for it)."""
        principal = current_principal()
        return principal.tenant_id if principal else ""

    def caller(self, session: Session, call: CallInfo) -> Caller:
        """The signed-in user (or API token) of this call, checked against the database: a disabled
        user or a revoked API token is refused at once, even with an unexpired token."""
        principal = current_principal()
        if principal is None:
            raise Unauthenticated("this call needs an access token")
        if principal.role is Role.SERVICE:
            raise PermissionDenied("this call is for users; platform services may not make it")
        user = session.get(User, principal.user_id)
        if user is None or user.disabled or user.tenant_id != principal.tenant_id:
            raise Unauthenticated("the account of this token no longer exists or is disabled")
        role = Role(principal.role)
        if principal.api_token:
            token = session.get(ApiToken, principal.token_id)
            now = datetime.now(UTC)
            if (
                token is None
                or token.user_id != user.id
                or token.revoke_time is not None
                or (token.expire_time is not None and token.expire_time <= now)
            ):
                raise Unauthenticated("API token has been revoked or has expired")
            if token.last_used_time is None or now - token.last_used_time > API_TOKEN_TOUCH:
                token.last_used_time = now
                session.add(token)
            role = min(Role(token.role), Role(user.role), key=ROLE_RANK.__getitem__)
        elif Role(user.role) != role:
            # A role change takes effect at once, not when the access token expires.
            role = min(role, Role(user.role), key=ROLE_RANK.__getitem__)
        if user.totp_secret is None and call.method not in TOTP_SETUP_CALLS:
            settings = session.get(TenantSettings, user.tenant_id)
            if settings is not None and settings.require_totp:
                raise FailedPrecondition(
                    "your organisation requires two-factor sign-in: call EnrollTotp first"
                )
        return Caller(principal, user, role, call)

    def step_up(self, session: Session, user: User, code: str) -> None:
        """Sensitive calls need a current TOTP code when the user has TOTP (common.proto: Step-up)."""
        if user.totp_secret is None:
            return
        if not code:
            raise PermissionDenied("this call needs a current TOTP code in totp_code (step-up)")
        secret = self.deps.totp_vault.decrypt(user.id, user.totp_secret)
        step = totp.matching_step(secret, code, after_step=user.totp_last_step)
        if step is None:
            raise PermissionDenied("the TOTP code in totp_code is wrong or was already used (step-up)")
        user.totp_last_step = step
        session.add(user)

    def record(
        self,
        session: Session,
        tenant_id: str,
        action: str,
        *,
        caller: Caller | None = None,
        call: CallInfo | None = None,
        actor_kind: str = "",
        actor_id: str = "",
        actor_email: str = "",
        target_type: str = "",
        target_id: str = "",
        details: dict[str, str] | None = None,
    ) -> None:
        """Append an audit entry in `session`'s transaction; it is published on NATS after the commit."""
        info = caller.call if caller else call
        entry, _ = audit.append(
            session,
            tenant_id,
            audit.Action(
                action=action,
                actor_kind=caller.actor_kind if caller else actor_kind,
                actor_id=caller.actor_id if caller else actor_id,
                actor_email=caller.user.email if caller else actor_email,
                target_type=target_type,
                target_id=target_id,
                details=details or {},
                client_ip=info.client_ip if info else "",
                trace_id=info.trace_id if info else "",
            ),
        )
        events.queue(session, f"audit.{tenant_id}", convert.audit_event(entry), entry.id)
