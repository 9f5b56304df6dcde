"""Access-token verification, local to every service, against the tenants service's public keys.

Tokens are JWTs signed by the tenants service (RS256; EdDSA only for the Ed25519 keys of older
installations). Each published key carries its algorithm and a token's header must name exactly that
one: `none`, HMAC or any other algorithm is refused, so a public key can never be used as a shared
secret. Public keys come from `GetJwks` and are cached; an unknown `kid` triggers at most one refresh
per `min_refresh_seconds`, so a flood of forged tokens cannot turn into a flood of JWKS calls.

Every call is verified here, so the hot path is lean (docs/decisions/0017-rs256-access-tokens.md): key
objects are built once per `kid`, a token's header is parsed once per distinct header (all tokens of
one key version share it), and the signature is checked with `cryptography` directly before the
claims are even decoded. A token already verified is remembered until it expires.

API tokens (`tbk_<id8>_<jwt>`, claim `typ: "api"`) are verified the same way. Because they live long,
a verifier given an `api_token_check` also asks the tenants service whether each one is still active,
at most once per `api_token_recheck_seconds` per token (docs/decisions/0014-tenants-api-tokens.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
from cryptography.hazmat.primitives.hashes import SHA256

from services.common.context import Principal, Role
from services.common.errors import PermissionDenied, Unauthenticated, Unavailable
from services.common.service_identity import platform_channel
from services.common.signing import AUDIENCE, SERVICE_ISSUER, USER_ISSUER, key_of_kid, service_of_key

# The only (key type, algorithm) pairs a token may be signed with.
ALGORITHMS = ("RS256", "EdDSA")
MIN_RSA_BITS = 2048
REQUIRED_CLAIMS = ("exp", "iat", "sub", "tid", "role")

JwksFetcher = Callable[[], Awaitable[dict[str, Any]]]
# Raises Unauthenticated when the API token (the full value) was revoked; returns when it is active.
ApiTokenCheck = Callable[[str], Awaitable[None]]
API_TOKEN_PREFIX = "tbk_"
VERIFIED_CACHE_SIZE = 100_000
HEADER_CACHE_SIZE = 1_000


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One published key version, ready to check signatures."""

    kid: str
    alg: str
    issuer: str
    service: str | None  # the service it vouches for; None for the users' key
    check: Callable[[bytes, bytes], None]  # (signature, signed bytes); raises InvalidSignature


def public_key(jwk: dict[str, Any]) -> PublicKey | None:
    """The key of a JWK, or None when it is not one tokens may be signed with (wrong type, alg or
    size): such a key is never used, so it cannot widen what is accepted."""
    kid, alg, kty = str(jwk.get("kid", "")), jwk.get("alg"), jwk.get("kty")
    try:
        if kty == "RSA" and alg == "RS256":
            numbers = RSAPublicNumbers(
                int.from_bytes(_b64decode(jwk["e"]), "big"), int.from_bytes(_b64decode(jwk["n"]), "big")
            )
            rsa = numbers.public_key()
            if rsa.key_size < MIN_RSA_BITS:
                return None
            pad, digest = PKCS1v15(), SHA256()

            def check(signature: bytes, data: bytes) -> None:
                rsa.verify(signature, data, pad, digest)

        elif kty == "OKP" and jwk.get("crv") == "Ed25519" and alg == "EdDSA":
            check = Ed25519PublicKey.from_public_bytes(_b64decode(jwk["x"])).verify
        else:
            return None
    except (KeyError, ValueError, TypeError):
        return None
    service = service_of_key(key_of_kid(kid))
    return PublicKey(kid, alg, SERVICE_ISSUER if service is not None else USER_ISSUER, service, check)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def claims_problem(claims: object, issuer: str, now: float) -> str | None:
    """Why verified claims are not acceptable (the checks of RFC 7519 we rely on), or None."""
    if not isinstance(claims, dict):
        return "access token is malformed"
    missing = [name for name in REQUIRED_CLAIMS if claims.get(name) is None]
    if missing:
        return f"access token rejected: it lacks the {', '.join(missing)} claim"
    exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
    if not _number(exp) or not _number(iat) or (nbf is not None and not _number(nbf)):
        return "access token rejected: exp, iat and nbf must be numbers"
    if exp <= now:
        return "access token has expired; refresh it or log in again"
    if iat > now + 60 or (nbf is not None and nbf > now + 60):  # a minute of clock skew between hosts
        return "access token rejected: it is not valid yet"
    aud = claims.get("aud")
    if aud != AUDIENCE and not (isinstance(aud, list) and AUDIENCE in aud):
        return "access token rejected: it is not meant for this platform (aud)"
    if claims.get("iss") != issuer:
        return "access token rejected: wrong issuer (iss)"
    if not isinstance(claims["sub"], str) or not isinstance(claims.get("jti", ""), str):
        return "access token rejected: sub and jti must be strings"
    return None


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
        self._keys: dict[str, PublicKey] = {}
        # Encoded header -> its key, so a header seen before costs one lookup (no base64, no JSON).
        self._headers: dict[str, PublicKey] = {}
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
            keys = (public_key(jwk) for jwk in jwks.get("keys", []))
            self._keys = {key.kid: key for key in keys if key is not None}
            self._headers = {}
            self._fetched_at = time.monotonic()

    async def load_keys(self) -> bool:
        """Fetch the signing keys unless some are held; True once they are (a service is ready to
        check tokens only then)."""
        if not self._keys:
            try:
                await self._refresh()
            except Unavailable:
                return False
        return bool(self._keys)

    async def _key_for(self, kid: str) -> PublicKey:
        if kid not in self._keys:
            await self._refresh()
        if kid not in self._keys:
            raise Unauthenticated("access token signed by an unknown key")
        return self._keys[kid]

    async def _key_of_header(self, encoded: str) -> PublicKey:
        cached = self._headers.get(encoded)
        if cached is not None:
            return cached
        try:
            header = json.loads(_b64decode(encoded))
        except ValueError:
            raise Unauthenticated("access token is malformed") from None
        if not isinstance(header, dict):
            raise Unauthenticated("access token is malformed")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise Unauthenticated(f"access token algorithm {alg!r} is not accepted")
        if "crit" in header:  # extensions we would have to understand; none are used
            raise Unauthenticated("access token header has critical extensions this platform does not know")
        key = await self._key_for(str(header.get("kid", "")))
        if alg != key.alg:
            raise Unauthenticated(f"access token algorithm {alg!r} is not the algorithm of its key")
        if len(self._headers) >= HEADER_CACHE_SIZE:  # bounded: forged headers cannot grow it
            self._headers.clear()
        self._headers[encoded] = key
        return key

    async def verify(self, token: str) -> Principal:
        """Return the caller named by a valid token, or raise Unauthenticated saying why not.

        A token already verified is remembered until it expires: a client presents the same token
        on every call for its whole life, and checking a signature costs far more than a lookup.
        Revocation of API tokens is still checked on its own schedule.
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
        signed, _, signature = token.rpartition(".")
        header, dot, payload = signed.partition(".")
        if not dot or "." in payload:
            raise Unauthenticated("access token is malformed")
        key = await self._key_of_header(header)
        try:
            key.check(_b64decode(signature), signed.encode())
        except (InvalidSignature, ValueError):
            raise Unauthenticated("access token rejected: its signature does not verify") from None
        try:
            claims = json.loads(_b64decode(payload))
        except ValueError:
            raise Unauthenticated("access token is malformed") from None
        problem = claims_problem(claims, key.issuer, time.time())
        if problem is not None:
            raise Unauthenticated(problem)
        try:
            role = Role(claims["role"])
        except ValueError:
            raise Unauthenticated("access token names an unknown role") from None
        # A service key may only vouch for that service itself, and only tenants' key for users.
        from_service = key.service is not None
        if from_service != (role is Role.SERVICE) or (
            from_service and claims["sub"] != f"service:{key.service}"
        ):
            raise Unauthenticated("access token claims an identity its signing key cannot vouch for")
        scopes = frozenset(str(claims.get("scope", "")).split())
        is_api = claims.get("typ") == "api"
        if is_api != presented.startswith(API_TOKEN_PREFIX) or (
            is_api and presented.split("_", 2)[1] != str(claims.get("jti", ""))[:8]
        ):
            raise Unauthenticated("API tokens must be sent whole, as CreateApiToken returned them")
        principal = Principal(
            user_id=claims["sub"],
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
            channel = platform_channel(tenants_addr)
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
