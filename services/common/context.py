"""Request-scoped context carried through `contextvars`: who is calling and on behalf of which tenant.

The auth interceptor sets the principal; logs read the tenant id from here, so every log line of a
request names its tenant without each call site passing it along.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    """Users' roles, from least to most powerful within a tenant; ADMIN is the platform operator.
    SERVICE is a platform service calling another; it holds no user role."""

    VIEWER = "viewer"
    TRADER = "trader"
    OWNER = "owner"
    ADMIN = "admin"
    SERVICE = "service"


ROLE_RANK = {Role.SERVICE: -1, Role.VIEWER: 0, Role.TRADER: 1, Role.OWNER: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Principal:
    """The verified caller of a request, taken from its access or API token."""

    user_id: str
    tenant_id: str
    role: Role
    scopes: frozenset[str] = field(default_factory=frozenset)
    token_id: str = ""
    # True when the caller presented an API token (an integrator), not a sign-in session's token.
    api_token: bool = False

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
_tenant_id: contextvars.ContextVar[str] = contextvars.ContextVar("tenant_id", default="")


def current_principal() -> Principal | None:
    return _principal.get()


def current_tenant_id() -> str:
    return _tenant_id.get()


def bind_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    if principal is not None:
        _tenant_id.set(principal.tenant_id)
    return _principal.set(principal)


def bind_tenant(tenant_id: str) -> contextvars.Token[str]:
    """Name the tenant a piece of background work (a NATS message, a candle) is for."""
    return _tenant_id.set(tenant_id)
