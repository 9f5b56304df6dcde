"""Access-token verification, local to every service, against the tenants service's public keys.

Tokens are JWTs signed by the tenants service (EdDSA, ES256 or RS256; the header's `alg` must be one of
those: `none` and HMAC are refused, so a public key can never be used as a shared secret). Public keys
come from `GetJwks` and are cached; an unknown `kid` triggers at most one refresh per
`min_refresh_seconds`, so a flood of forged tokens cannot turn into a flood of JWKS calls.

API tokens (`tbk_<id8>_<jwt>`, claim `typ: "api"`) are verified the same way. Because they live long,
a verifier given an `api_token_check` also asks the tenants service whether each one is still active,
at most once per `api_token_recheck_seconds` per token (docs/decisions/0014-tenants-api-tokens.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from services.common.context import Principal, Role
from services.common.errors import PermissionDenied, Unauthenticated, Unavailable
from services.common.signing import AUDIENCE, SERVICE_ISSUER, SERVICE_KEY_PREFIX, USER_ISSUER, key_of_kid

ALGORITHMS = ["EdDSA", "ES256", "RS256"]

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
# Raises Unauthenticated when the API token (the full value) was revoked; returns when it is active.
ApiTokenCheck = Callable[[str], Awaitable[None]]
API_TOKEN_PREFIX = "tbk_"
VERIFIED_CACHE_SIZE = 100_000


class TokenVerifier:
    def __init__(
        self,
        fetch_jwks: JwksFetcher,
        *,
        min_refresh_seconds: float = 30.0,
        api_token_check: ApiTokenCheck | None = None,
        api_token_recheck_seconds: float = 30.0,
    ) -> None:
        self._fetch = fetch_jwks
        self._api_check = api_token_check
        self._api_recheck = api_token_recheck_seconds
        self._api_checked: dict[str, float] = {}
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._min_refresh = min_refresh_seconds
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._fetched_at < self._min_refresh and self._keys:
                return
            try:
                jwks = await self._fetch()
            except Exception as error:  # any transport failure: the caller may retry
                raise Unavailable(
                    f"cannot fetch token signing keys from the tenants service: {error}"
                ) from None
            self._keys = {key["kid"]: jwt.PyJWK.from_dict(key) for key in jwks.get("keys", [])}
            self._fetched_at = time.monotonic()

    async def _key_for(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh()
        if kid not in self._keys:
            raise Unauthenticated("access token signed by an unknown key")
        return self._keys[kid]

    async def verify(self, token: str) -> Principal:
        """Return the caller named by a valid token, or raise Unauthenticated saying why not.

        A token already verified is remembered until it expires: a client presents the same token
        on every call for its whole life, and checking an Ed25519 signature costs far more than a
        lookup. Revocation of API tokens is still checked on its own schedule.
        """
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            principal = cached[0]
        else:
            principal, expires_at = await self._verify_signature(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:  # bounded: start over rather than grow
                self._verified.clear()
            self._verified[token] = (principal, expires_at)
        if principal.api_token:
            await self._check_api_token(token, principal.token_id)
        return principal

    async def _verify_signature(self, token: str) -> tuple[Principal, float]:
        presented = token
        if token.startswith(API_TOKEN_PREFIX):
            token = token.split("_", 2)[-1]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("access token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(f"access token algorithm {header.get('alg')!r} is not accepted")
        kid = str(header.get("kid", ""))
        key = await self._key_for(kid)
        signer = key_of_kid(kid)
        from_service = signer.startswith(SERVICE_KEY_PREFIX)
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=ALGORITHMS,
                audience=AUDIENCE,
                issuer=SERVICE_ISSUER if from_service else USER_ISSUER,
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
        # A service key may only vouch for that service itself, and only tenants' key for users.
        if from_service != (role is Role.SERVICE) or (
            from_service and claims["sub"] != f"service:{signer.removeprefix(SERVICE_KEY_PREFIX)}"
        ):
            raise Unauthenticated("access token claims an identity its signing key cannot vouch for")
        scopes = frozenset(str(claims.get("scope", "")).split())
        is_api = claims.get("typ") == "api"
        if is_api != presented.startswith(API_TOKEN_PREFIX) or (
            is_api and presented.split("_", 2)[1] != str(claims.get("jti", ""))[:8]
        ):
            raise Unauthenticated("API tokens must be sent whole, as CreateApiToken returned them")
        principal = Principal(
            user_id=str(claims["sub"]),
            tenant_id=str(claims["tid"]),
            role=role,
            scopes=scopes,
            token_id=str(claims.get("jti", "")),
            api_token=is_api,
        )
        return principal, float(claims["exp"])

    async def _check_api_token(self, token: str, token_id: str) -> None:
        if self._api_check is None:
            return
        now = time.monotonic()
        if now - self._api_checked.get(token_id, -1e18) < self._api_recheck:
            return
        await self._api_check(token)
        if len(self._api_checked) > 100_000:  # bounded: forget everything rather than grow forever
            self._api_checked.clear()
        self._api_checked[token_id] = now


def tenants_api_token_check(tenants_addr: str) -> ApiTokenCheck:
    """Ask the tenants service whether an API token is active: GetMe presenting the token itself, so
    no extra credential or RPC is needed and tenants answers from its database."""
    import grpc

    channel: grpc.aio.Channel | None = None

    async def check(token: str) -> None:
        nonlocal channel
        from tradebot.tenants.v1 import tenants_service_pb2, tenants_service_pb2_grpc

        if channel is None:
            channel = grpc.aio.insecure_channel(tenants_addr)
        stub = tenants_service_pb2_grpc.TenantsServiceStub(channel)
        try:
            await stub.GetMe(
                tenants_service_pb2.GetMeRequest(),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=5,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise Unauthenticated("API token has been revoked or has expired") from None
            raise Unavailable("cannot check the API token with the tenants service") from None

    return check


def require_scope(principal: Principal, scope: str) -> Principal:
    """For API tokens: the token must carry `scope` ("read" or "trade"). Session tokens carry all of
    their role's scopes, so this only narrows what an integrator's token can do."""
    if scope not in principal.scopes:
        raise PermissionDenied(f"this call needs the {scope!r} scope, which your token does not carry")
    return principal


def require_service(principal: Principal | None) -> Principal:
    """For calls only platform services make (e.g. EnsureSubscriptions, RecordAuditEvent)."""
    if principal is None:
        raise Unauthenticated("this call needs a service token")
    if principal.role is not Role.SERVICE:
        raise PermissionDenied("this call is reserved for platform services")
    return principal


def require_reader(principal: Principal | None) -> Principal:
    """For data any authenticated caller may read: users of any role, or a platform service."""
    if principal is not None and principal.role is Role.SERVICE:
        return principal
    return require_role(principal, Role.VIEWER)


def require_role(principal: Principal | None, role: Role) -> Principal:
    """The one role check services use: the caller must hold `role` or a stronger one."""
    if principal is None:
        raise Unauthenticated("this call needs an access token")
    if not principal.at_least(role):
        raise PermissionDenied(f"this call needs the {role.value} role; you are {principal.role.value}")
    return principal
