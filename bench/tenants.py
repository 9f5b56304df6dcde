"""Token verification in a consumer service (TokenVerifier with cached JWKS) and the login cost.

- verify: calls/s through `services.common.auth.TokenVerifier` with its JWKS cached, as every
  service verifies each call. Two workloads: every call with a token never seen before (a full
  Ed25519 check each time: the worst case), and realistic traffic where each session's token is
  presented on many calls (1,000 sessions x 20 calls, shuffled), which the verifier answers from
  its verified-token cache after the first check. Baseline: PyJWT's bare `jwt.decode` per call.
  Goal: >= 20,000/s.
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench.results import write_result
from services.common.auth import TokenVerifier
from services.common.signing import AUDIENCE, USER_ISSUER
from services.tenants.passwords import HASHER

TOKENS = 20_000
HASHES = 10


def _keys() -> tuple[Ed25519PrivateKey, dict[str, Any]]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return private, {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": x,
        "kid": "tenants-jwt-v1",
        "use": "sig",
        "alg": "EdDSA",
    }


def _token(private: Ed25519PrivateKey) -> str:
    now = int(time.time())
    claims = {
        "iss": USER_ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
        "sub": "user-1",
        "tid": "tenant-1",
        "role": "trader",
        "scope": "read trade",
        "typ": "access",
    }
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "tenants-jwt-v1"})


def _rate(count: int, seconds: float) -> int:
    return int(count / seconds)


def bench_verify() -> dict[str, Any]:
    private, jwk = _keys()
    tokens = [_token(private) for _ in range(TOKENS)]

    async def fetch() -> dict[str, Any]:
        return {"keys": [jwk]}

    verifier = TokenVerifier(fetch)

    async def run() -> float:
        await verifier.verify(tokens[0])  # fills the JWKS cache
        started = time.perf_counter()
        for token in tokens:
            await verifier.verify(token)
        return time.perf_counter() - started

    ours = _rate(TOKENS, asyncio.run(run()))
    sessions = tokens[:1_000]
    traffic = [token for token in sessions for _ in range(TOKENS // len(sessions))]
    random.Random(7).shuffle(traffic)
    repeat_verifier = TokenVerifier(fetch)

    async def run_traffic() -> float:
        await repeat_verifier.verify(traffic[0])
        started = time.perf_counter()
        for token in traffic:
            await repeat_verifier.verify(token)
        return time.perf_counter() - started

    ours_traffic = _rate(len(traffic), asyncio.run(run_traffic()))
    key = jwt.PyJWK.from_dict(jwk).key
    started = time.perf_counter()
    for token in tokens:
        jwt.decode(token, key=key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=USER_ISSUER)
    bare = _rate(TOKENS, time.perf_counter() - started)
    return {
        "every_token_new": ours,
        "sessions_traffic": ours_traffic,
        "baseline_pyjwt_decode": bare,
        "ratio_every_token_new": round(ours / bare, 3),
        "ratio_sessions_traffic": round(ours_traffic / bare, 3),
        "goal": 20_000,
        "goal_met_sessions_traffic": ours_traffic >= 20_000,
        "goal_met_every_token_new": ours >= 20_000,
        "unit": "verified calls/s, one core",
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
