"""Access tokens for tests, signed by the same Vault transit key the tenants service signs with, so
every service verifies them through the real JWKS path."""

from __future__ import annotations

import hvac

from services.common.signing import TransitSigner, service_key
from services.devstack.openbao import EmbeddedOpenBao


def access_token(
    vault: EmbeddedOpenBao, *, tenant_id: str, role: str, user_id: str = "user-1", ttl: int = 300
) -> str:
    signer = TransitSigner(hvac.Client(url=vault.addr, token=vault.root_token))
    return signer.sign({"sub": user_id, "tid": tenant_id, "role": role, "scope": "read trade"}, ttl)


def service_token(vault: EmbeddedOpenBao, service: str, *, claimed: str = "") -> str:
    """A token signed with `service`'s identity key (claiming to be `claimed`, by default itself)."""
    signer = TransitSigner(hvac.Client(url=vault.addr, token=vault.root_token), service_key(service))
    return signer.sign({"sub": f"service:{claimed or service}", "tid": "", "role": "service"}, 300)
