"""Access-token verification, local to every service, against the tenants service's public keys.

Tokens are JWTs signed by the tenants service (EdDSA, ES256 or RS256; the header's `alg` must be one of
those: `none` and HMAC are refused, so a public key can never be used as a shared secret). Public keys
come from `GetJwks` and are cached; an unknown `kid` triggers at most one refresh per
`min_refresh_seconds`, so a flood of forged tokens cannot turn into a flood of JWKS calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from services.common.context import Principal, Role
from services.common.errors import PermissionDenied, Unauthenticated

ISSUER = "tradebot-tenants"
AUDIENCE = "tradebot"
ALGORITHMS = ["EdDSA", "ES256", "RS256"]

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]


class TokenVerifier:
    def __init__(self, fetch_jwks: JwksFetcher, *, min_refresh_seconds: float = 30.0) -> None:
        self._fetch = fetch_jwks
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._min_refresh = min_refresh_seconds
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._min_refresh and self._keys:
                return
            jwks = await self._fetch()
            self._keys = {key["kid"]: jwt.PyJWK.from_dict(key) for key in jwks.get("keys", [])}
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh()
        if kid not in self._keys:
            raise Unauthenticated("access token signed by an unknown key")
        return self._keys[kid]

    async def verify(self, token: str) -> Principal:
        """Return the caller named by a valid token, or raise Unauthenticated saying why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("access token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(f"access token algorithm {header.get('alg')!r} is not accepted")
        key = await self._key_for(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "tid", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("access token has expired; refresh it or log in again") from None
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"access token rejected: {error}") from None
        try:
            role = Role(claims["role"])
        except ValueError:
            raise Unauthenticated("access token names an unknown role") from None
        scopes = frozenset(str(claims.get("scope", "")).split())
        return Principal(
            user_id=str(claims["sub"]),
            tenant_id=str(claims["tid"]),
            role=role,
            scopes=scopes,
            token_id=str(claims.get("jti", "")),
        )


def require_role(principal: Principal | None, role: Role) -> Principal:
    """The one role check services use: the caller must hold `role` or a stronger one."""
    if principal is None:
        raise Unauthenticated("this call needs an access token")
    if not principal.at_least(role):
        raise PermissionDenied(f"this call needs the {role.value} role; you are {principal.role.value}")
    return principal
