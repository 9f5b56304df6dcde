"""The credentials this service issues: access tokens, refresh tokens, API tokens and invite tokens.

- Access tokens: JWTs signed inside Vault (transit key `tenants-jwt`), 15 minutes, verified locally by
  every service through GetJwks.
- API tokens: the same kind of JWT, long-lived, with `typ: "api"` and `jti` = the token's id; their
  value is `tbk_<first 8 of id>_<jwt>` so it is recognisable (secret scanners, the token list). Only a
  SHA-256 digest of the value is stored. Revocation: see docs/decisions/0014-tenants-api-tokens.md.
- Refresh and invite tokens: 256 random bits, opaque; only their SHA-256 digest is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from services.common.context import Role
from services.common.signing import TransitSigner

ACCESS_TOKEN_SECONDS = 15 * 60
API_TOKEN_PREFIX = "tbk_"
# "Never expires" still needs an `exp` claim (every verifier requires one): ten years.
API_TOKEN_MAX_SECONDS = 10 * 365 * 24 * 3600


def scopes_of(role: Role) -> str:
    """Scopes for a role: VIEWER reads; TRADER and above also trade."""
    return "read" if role is Role.VIEWER else "read trade"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def opaque(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


class TokenIssuer:
    def __init__(self, signer: TransitSigner) -> None:
        self.signer = signer

    def access_token(self, *, user_id: str, tenant_id: str, role: Role) -> tuple[str, datetime]:
        """A signed access token and its expiry (blocking: one Vault call)."""
        claims = {
            "sub": user_id,
            "tid": tenant_id,
            "role": role.value,
            "scope": scopes_of(role),
            "typ": "access",
        }
        token = self.signer.sign(claims, ACCESS_TOKEN_SECONDS)
        return token, datetime.now(UTC) + timedelta(seconds=ACCESS_TOKEN_SECONDS)

    def api_token(
        self, *, token_id: str, user_id: str, tenant_id: str, role: Role, expire_time: datetime | None
    ) -> str:
        now = datetime.now(UTC)
        seconds = API_TOKEN_MAX_SECONDS if expire_time is None else int((expire_time - now).total_seconds())
        claims = {
            "sub": user_id,
            "tid": tenant_id,
            "role": role.value,
            "scope": scopes_of(role),
            "typ": "api",
            "jti": token_id,
        }
        return f"{API_TOKEN_PREFIX}{token_id[:8]}_{self.signer.sign(claims, max(seconds, 1))}"


def api_token_display_prefix(token_id: str) -> str:
    return f"{API_TOKEN_PREFIX}{token_id[:8]}"
