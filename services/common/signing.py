"""Token signing with keys that never leave Vault (the transit engine signs for us).

Two kinds of keys, both RSA-2048 transit keys signing RS256 (PKCS#1 v1.5 over SHA-256), chosen
because verification, which every service does on every call, is several times cheaper than Ed25519
or P-256 (docs/decisions/0017-rs256-access-tokens.md):
- `tenants-jwt-rs256`: the tenants service signs users' access tokens with it;
- `service-<name>-rs256`: each platform service signs its own short-lived service token with it, for
  calls only platform services may make. The verifier only accepts a `service` principal naming
  that same service from such a key, so a service key can never mint a user's token.
Transit cannot change a key's type, so the Ed25519 keys of older installations (`tenants-jwt`,
`service-<name>`) keep their names and are no longer used for signing; while they exist they are
still published (EdDSA), so long-lived API tokens they signed keep working until revoked.
Each key version is published through GetJwks as a JWK whose `kid` names key and version, so a
rotated key keeps verifying the tokens it signed until they expire.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import hvac
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

USER_KEY = "tenants-jwt-rs256"
LEGACY_USER_KEY = "tenants-jwt"
USER_ISSUER = "tradebot-tenants"
SERVICE_ISSUER = "tradebot-service"
AUDIENCE = "tradebot"
SERVICE_KEY_PREFIX = "service-"
KEY_SUFFIX = "-rs256"
KEY_TYPE = "rsa-2048"
# What a transit key's type signs as in a JWT header.
ALGORITHM_OF_TYPE = {"rsa-2048": "RS256", "rsa-3072": "RS256", "rsa-4096": "RS256", "ed25519": "EdDSA"}


def service_key(service: str) -> str:
    return f"{SERVICE_KEY_PREFIX}{service}{KEY_SUFFIX}"


def is_signing_key(key_name: str) -> bool:
    """Keys whose public halves GetJwks publishes: users' keys (current and legacy) and services'."""
    return key_name in (USER_KEY, LEGACY_USER_KEY) or key_name.startswith(SERVICE_KEY_PREFIX)


def service_of_key(key_name: str) -> str | None:
    """The service a key vouches for ("service-execution-rs256" -> "execution"); None for users' keys."""
    if not key_name.startswith(SERVICE_KEY_PREFIX):
        return None
    return key_name.removeprefix(SERVICE_KEY_PREFIX).removesuffix(KEY_SUFFIX)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64url_int(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def kid_for(key_name: str, version: int) -> str:
    return f"{key_name}-v{version}"


def key_of_kid(kid: str) -> str:
    """The transit key a `kid` belongs to ("service-execution-rs256-v2" -> "service-execution-rs256")."""
    return kid.rsplit("-v", 1)[0]


def jwk_of(key_type: str, public_key: str, kid: str) -> dict[str, str] | None:
    """A transit key version's public key as a JWK; None for a type tokens are never signed with."""
    if key_type == "ed25519":
        x = _b64url(base64.b64decode(public_key))
        return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig", "alg": "EdDSA"}
    if ALGORITHM_OF_TYPE.get(key_type) == "RS256":
        rsa = load_pem_public_key(public_key.encode())
        assert isinstance(rsa, RSAPublicKey)
        numbers = rsa.public_numbers()
        return {
            "kty": "RSA",
            "n": _b64url_int(numbers.n),
            "e": _b64url_int(numbers.e),
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
        }
    return None


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
            jwk = jwk_of(key["type"], material["public_key"], self._kid(int(version)))
            if jwk is not None:
                jwks.append(jwk)
        return jwks

    def _kid(self, version: int) -> str:
        return kid_for(self.key_name, version)

    def sign(self, claims: dict[str, Any], ttl_seconds: int) -> str:
        key = self.client.secrets.transit.read_key(self.key_name)["data"]
        version = int(key["latest_version"])
        algorithm = ALGORITHM_OF_TYPE[key["type"]]
        now = int(time.time())
        payload = {
            "iss": SERVICE_ISSUER if self.key_name.startswith(SERVICE_KEY_PREFIX) else USER_ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        header = {"alg": algorithm, "typ": "JWT", "kid": self._kid(version)}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
        # RS256 is RSASSA-PKCS1-v1_5 over SHA-256 (RFC 7518 3.3); Ed25519 keys ignore both options.
        result = self.client.secrets.transit.sign_data(
            self.key_name,
            hash_input=base64.b64encode(signing_input.encode()).decode(),
            key_version=version,
            hash_algorithm="sha2-256",
            signature_algorithm="pkcs1v15",
        )
        signature = base64.b64decode(result["data"]["signature"].split(":")[-1])
        return f"{signing_input}.{_b64url(signature)}"
