"""Token verification in a consumer service (TokenVerifier with cached JWKS) and the login cost.

- verify: calls/s through `services.common.auth.TokenVerifier` with its JWKS cached, as every
  service verifies each call. Headline: every call with a token never seen before (a full RS256
  check each time: the worst case), with an RSA-2048 key as the platform signs with. Also: realistic
  traffic where each session's token is presented on many calls (1,000 sessions x 20 calls,
  shuffled), answered from the verified-token cache after the first check; and, for the choice of
  key (docs/decisions/0017-rs256-access-tokens.md), every-token-new with RSA-3072 and with the
  Ed25519 keys of older installations. Baseline: PyJWT's bare `jwt.decode` per call with the same
  key. Goal: >= 20,000/s every token new.
- login: one Argon2id hash and one verify with the parameters of services/tenants/passwords.py;
  baseline: argon2-cffi's default parameters. Goal: >= 50 ms per hash (offline guessing stays costly).
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
import uuid
from typing import Any

import jwt
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.results import write_result
from services.common.auth import TokenVerifier
from services.common.signing import AUDIENCE, USER_ISSUER, jwk_of
from services.tenants.passwords import HASHER

TOKENS = 10_000  # RSA signing to prepare them is the slow part of this benchmark
SIDE_TOKENS = 3_000
SESSIONS = 1_000
CALLS_PER_SESSION = 20
HASHES = 10
# The machine is shared: each figure is the best of a few rounds, ours and the baseline interleaved,
# so a burst of other work lowers neither side alone.
ROUNDS = 3
KID = "tenants-jwt-rs256-v1"
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _keys(key_type: str) -> tuple[PrivateKey, dict[str, Any], str]:
    """A private key and its public JWK exactly as GetJwks publishes a transit key of `key_type`."""
    private: PrivateKey
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        public = base64.b64encode(raw).decode()
        alg = "EdDSA"
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.split("-")[1]))
        public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
        alg = "RS256"
    jwk = jwk_of(key_type, public, KID)
    assert jwk is not None
    return private, jwk, alg


def _tokens(private: PrivateKey, alg: str, count: int) -> list[str]:
    now = int(time.time())
    claims = {
        "iss": USER_ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 900,
        "sub": "user-1",
        "tid": "tenant-1",
        "role": "trader",
        "scope": "read trade",
        "typ": "access",
    }
    return [
        jwt.encode({**claims, "jti": uuid.uuid4().hex}, private, algorithm=alg, headers={"kid": KID})
        for _ in range(count)
    ]


def _rate(count: int, seconds: float) -> int:
    return int(count / seconds)


def _verifier_rate(jwk: dict[str, Any], warm_up: str, calls: list[str]) -> int:
    async def fetch() -> dict[str, Any]:
        return {"keys": [jwk]}

    verifier = TokenVerifier(fetch)

    async def run() -> float:
        await verifier.verify(warm_up)  # fills the JWKS cache, as in a service that is up
        started = time.perf_counter()
        for token in calls:
            await verifier.verify(token)
        return time.perf_counter() - started

    return _rate(len(calls), asyncio.run(run()))


def _pyjwt_rate(jwk: dict[str, Any], alg: str, tokens: list[str]) -> int:
    key = jwt.PyJWK.from_dict(jwk).key
    started = time.perf_counter()
    for token in tokens:
        jwt.decode(token, key=key, algorithms=[alg], audience=AUDIENCE, issuer=USER_ISSUER)
    return _rate(len(tokens), time.perf_counter() - started)


def _best(jwk: dict[str, Any], alg: str, warm_up: str, calls: list[str]) -> tuple[int, int]:
    """(ours, PyJWT) calls/s, each the best of ROUNDS interleaved rounds."""
    ours, bare = 0, 0
    for _ in range(ROUNDS):
        ours = max(ours, _verifier_rate(jwk, warm_up, calls))
        bare = max(bare, _pyjwt_rate(jwk, alg, calls))
    return ours, bare


def bench_verify() -> dict[str, Any]:
    private, jwk, alg = _keys("rsa-2048")
    warm_up, *tokens = _tokens(private, alg, TOKENS + 1)
    ours, bare = _best(jwk, alg, warm_up, tokens)
    traffic = [token for token in tokens[:SESSIONS] for _ in range(CALLS_PER_SESSION)]
    random.Random(7).shuffle(traffic)
    ours_traffic = max(_verifier_rate(jwk, warm_up, traffic) for _ in range(ROUNDS))
    other_keys = {}
    for key_type in ("rsa-3072", "ed25519"):
        side_private, side_jwk, side_alg = _keys(key_type)
        side_warm_up, *side_tokens = _tokens(side_private, side_alg, SIDE_TOKENS + 1)
        side_ours, side_bare = _best(side_jwk, side_alg, side_warm_up, side_tokens)
        other_keys[key_type] = {
            "every_token_new": side_ours,
            "baseline_pyjwt_decode": side_bare,
            "ratio": round(side_ours / side_bare, 3),
            "ratio_to_rsa_2048": round(side_ours / ours, 3),
        }
    print(
        f"every token new (RS256, RSA-2048): {ours:,}/s = {ours / bare:.2f}x PyJWT decode ({bare:,}/s); "
        f"sessions traffic: {ours_traffic:,}/s = {ours_traffic / bare:.2f}x; goal 20,000/s"
    )
    for key_type, figures in other_keys.items():
        print(
            f"  for the choice of key, every token new with {key_type}: {figures['every_token_new']:,}/s"
            f" ({figures['ratio_to_rsa_2048']:.2f}x RSA-2048, {figures['ratio']:.2f}x PyJWT)"
        )
    return {
        "key": "rsa-2048 RS256",
        "every_token_new": ours,
        "sessions_traffic": ours_traffic,
        "baseline_pyjwt_decode": bare,
        "ratio_every_token_new": round(ours / bare, 3),
        "ratio_sessions_traffic": round(ours_traffic / bare, 3),
        "other_keys_every_token_new": other_keys,
        "goal": 20_000,
        "goal_met_every_token_new": ours >= 20_000,
        "goal_met_sessions_traffic": ours_traffic >= 20_000,
        "unit": f"verified calls/s, one core, best of {ROUNDS} rounds",
    }


def _per_hash_ms(hasher: PasswordHasher) -> tuple[float, float]:
    started = time.perf_counter()
    hashes = [hasher.hash(f"Correct-Horse-{n}!") for n in range(HASHES)]
    hash_ms = (time.perf_counter() - started) * 1000 / HASHES
    started = time.perf_counter()
    for n, value in enumerate(hashes):
        hasher.verify(value, f"Correct-Horse-{n}!")
    return hash_ms, (time.perf_counter() - started) * 1000 / HASHES


def bench_login() -> dict[str, Any]:
    ours_hash, ours_verify = _per_hash_ms(HASHER)
    default_hash, _ = _per_hash_ms(PasswordHasher())
    return {
        "ours_hash_ms": round(ours_hash, 1),
        "ours_verify_ms": round(ours_verify, 1),
        "baseline_argon2_default_hash_ms": round(default_hash, 1),
        "ratio": round(ours_hash / default_hash, 2),
        "parameters": {
            "time_cost": HASHER.time_cost,
            "memory_kib": HASHER.memory_cost,
            "parallelism": HASHER.parallelism,
        },
        "goal_ms": 50,
        "goal_met": ours_hash >= 50,
    }


def main() -> None:
    write_result(
        "tenants", {"token_verifications_per_s": bench_verify(), "login_password_hash": bench_login()}
    )


if __name__ == "__main__":
    main()
