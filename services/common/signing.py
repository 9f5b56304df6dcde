"""Token signing with keys that never leave Vault (the transit engine signs for us).

Two kinds of keys, both Ed25519 transit keys:
- `tenants-jwt`: the tenants service signs users' access tokens with it;
- `service-<name>`: each platform service signs its own short-lived service token with it, for
  calls only platform services may make. The verifier only accepts a `service` principal naming
  that same service from such a key, so a service key can never mint a user's token.
Each key version is published through GetJwks as an OKP JWK whose `kid` names key and version, so
a rotated key keeps verifying the tokens it signed until they expire.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import hvac

USER_KEY = "tenants-jwt"
USER_ISSUER = "tradebot-tenants"
SERVICE_ISSUER = "tradebot-service"
AUDIENCE = "tradebot"
SERVICE_KEY_PREFIX = "service-"


def service_key(service: str) -> str:
    return f"{SERVICE_KEY_PREFIX}{service}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def kid_for(key_name: str, version: int) -> str:
    return f"{key_name}-v{version}"


def key_of_kid(kid: str) -> str:
    """The transit key a `kid` belongs to ("service-execution-v2" -> "service-execution")."""
    return kid.rsplit("-v", 1)[0]


class TransitSigner:
    def __init__(self, client: hvac.Client, key_name: str = USER_KEY) -> None:
        self.client = client
        self.key_name = key_name

    def public_keys(self) -> list[dict[str, str]]:
        """Every key version still allowed to verify, as JWKs."""
        key = self.client.secrets.transit.read_key(self.key_name)["data"]
        minimum = int(key.get("min_decryption_version", 1))
        jwks = []
        for version, material in sorted(key["keys"].items(), key=lambda item: int(item[0])):
            if int(version) < minimum:
                continue
            raw = base64.b64decode(material["public_key"])
            jwks.append(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64url(raw),
                    "kid": self._kid(int(version)),
                    "use": "sig",
                    "alg": "EdDSA",
                }
            )
        return jwks

    def _kid(self, version: int) -> str:
        return kid_for(self.key_name, version)

    def sign(self, claims: dict[str, Any], ttl_seconds: int) -> str:
        key = self.client.secrets.transit.read_key(self.key_name)["data"]
        version = int(key["latest_version"])
        now = int(time.time())
        payload = {
            "iss": SERVICE_ISSUER if self.key_name.startswith(SERVICE_KEY_PREFIX) else USER_ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        header = {"alg": "EdDSA", "typ": "JWT", "kid": self._kid(version)}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
        result = self.client.secrets.transit.sign_data(
            self.key_name, hash_input=base64.b64encode(signing_input.encode()).decode(), key_version=version
        )
        signature = base64.b64decode(result["data"]["signature"].split(":")[-1])
        return f"{signing_input}.{_b64url(signature)}"
