"""Token verification (services/common/auth.py) against keys in the real OpenBao, published the way
GetJwks publishes them: RS256 tokens verify; every token whose algorithm is not its key's, or whose
signature, claims or key are wrong, is refused; the Ed25519 keys of older data folders keep working."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.common.auth import TokenVerifier
from services.common.context import Role
from services.common.errors import Unauthenticated
from services.common.signing import (
    AUDIENCE,
    LEGACY_USER_KEY,
    USER_ISSUER,
    USER_KEY,
    TransitSigner,
    service_key,
)
from services.devstack.openbao import EmbeddedOpenBao
from services.tenants.server import platform_public_keys
from tests.helpers.infra import Infra


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _segment(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data).encode())


def _root(vault: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=vault.addr, token=vault.root_token)


def _verifier(client: hvac.Client) -> TokenVerifier:
    async def fetch() -> dict[str, Any]:
        return {"keys": await asyncio.to_thread(platform_public_keys, client)}

    return TokenVerifier(fetch, min_refresh_seconds=0)


def _verify(verifier: TokenVerifier, token: str) -> Any:
    return asyncio.run(verifier.verify(token))


def _user_claims(**extra: Any) -> dict[str, Any]:
    return {
        "sub": f"user-{uuid.uuid4().hex[:6]}",
        "tid": "tenant-a",
        "role": "trader",
        "scope": "read",
    } | extra


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
    )


def test_tokens_are_rs256_from_rsa_2048_transit_keys_and_verify(infra: Infra) -> None:
    client = _root(infra.vault)
    for name in (USER_KEY, service_key("strategy")):
        assert client.secrets.transit.read_key(name)["data"]["type"] == "rsa-2048"
    token = TransitSigner(client).sign(_user_claims(), 300)
    header, claims = _parts(token)
    assert header["alg"] == "RS256" and header["kid"].startswith(f"{USER_KEY}-v")
    jwks = platform_public_keys(client)
    published = next(jwk for jwk in jwks if jwk["kid"] == header["kid"])
    assert (published["kty"], published["alg"]) == ("RSA", "RS256") and published["e"] == "AQAB"
    # Any RFC 7517 library verifies it with the published key (not only our own verifier).
    jwt.decode(token, jwt.PyJWK.from_dict(published).key, algorithms=["RS256"], audience=AUDIENCE)
    principal = _verify(_verifier(client), token)
    assert (principal.user_id, principal.tenant_id, principal.role) == (
        claims["sub"],
        "tenant-a",
        Role.TRADER,
    )
    assert principal.scopes == frozenset({"read"}) and not principal.api_token


def test_algorithm_confusion_foreign_keys_and_bad_claims_are_refused(infra: Infra) -> None:
    client = _root(infra.vault)
    verifier = _verifier(client)
    good = TransitSigner(client).sign(_user_claims(), 300)
    _verify(verifier, good)
    header, claims = _parts(good)
    kid = header["kid"]
    published = next(jwk for jwk in platform_public_keys(client) if jwk["kid"] == kid)
    public_pem = jwt.PyJWK.from_dict(published).key.public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )

    def hs256(secret: bytes) -> str:
        signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}"
        return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"

    foreign_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    refused = {
        "alg none": f"{_segment({'alg': 'none', 'kid': kid})}.{_segment(claims)}.",
        "HS256 keyed with the public PEM": hs256(public_pem),
        "HS256 keyed with the JWK modulus": hs256(published["n"].encode()),
        "RS256 by a foreign key": jwt.encode(claims, foreign_rsa, algorithm="RS256", headers={"kid": kid}),
        "EdDSA under an RSA kid": jwt.encode(
            claims, ed25519.Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
        ),
        "PS256 under an RSA kid": jwt.encode(claims, foreign_rsa, algorithm="PS256", headers={"kid": kid}),
        "promoted role": ".".join(
            [good.split(".")[0], _segment({**claims, "role": "admin"}), good.split(".")[2]]
        ),
        "unknown kid": jwt.encode(claims, foreign_rsa, algorithm="RS256", headers={"kid": f"{USER_KEY}-v99"}),
        "critical extension": jwt.encode(
            claims, foreign_rsa, algorithm="RS256", headers={"kid": kid, "crit": ["b64"], "b64": False}
        ),
        "garbage": "not-a-jwt",
        "two segments": ".".join(good.split(".")[:2]),
    }
    signer = TransitSigner(client)
    for name, bad_claims in {
        "expired": _user_claims(),
        "wrong audience": _user_claims(aud="another-platform"),
        "wrong issuer": _user_claims(iss="tradebot-service"),
        "not valid yet": _user_claims(iat=now + 3600),
        "string expiry": _user_claims(exp=str(now + 300)),
    }.items():
        refused[name] = signer.sign(bad_claims, -60 if name == "expired" else 300)
    refused["no tenant claim"] = signer.sign({"sub": "user-1", "role": "trader"}, 300)
    for name, token in refused.items():
        with pytest.raises(Unauthenticated) as error:
            _verify(verifier, token)
        assert "access token" in str(error.value), name
    with pytest.raises(Unauthenticated, match="expired"):
        _verify(verifier, refused["expired"])
    with pytest.raises(Unauthenticated, match="'HS256' is not accepted"):
        _verify(verifier, refused["HS256 keyed with the public PEM"])
    with pytest.raises(Unauthenticated, match="not the algorithm of its key"):
        _verify(verifier, refused["EdDSA under an RSA kid"])
    assert _verify(verifier, good).user_id == claims["sub"], "refusals leave the verifier working"


def test_a_weak_or_mislabelled_key_in_the_jwks_is_never_used() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_jwk = {
        **json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(weak.public_key())),
        "kid": "tenants-jwt-rs256-v7",
    }
    claims = {"iss": USER_ISSUER, "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 60}
    claims |= _user_claims()
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_raw = ed.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # An OKP key published as RS256 would let a header pick the check; it is ignored instead.
    mislabelled = {"kty": "OKP", "crv": "Ed25519", "x": _b64(ed_raw), "kid": "tenants-jwt-v3", "alg": "RS256"}

    async def fetch() -> dict[str, Any]:
        return {"keys": [{**weak_jwk, "alg": "RS256"}, mislabelled]}

    verifier = TokenVerifier(fetch)
    for token in (
        jwt.encode(claims, weak, algorithm="RS256", headers={"kid": "tenants-jwt-rs256-v7"}),
        jwt.encode(claims, ed, algorithm="EdDSA", headers={"kid": "tenants-jwt-v3"}),
    ):
        with pytest.raises(Unauthenticated, match="unknown key"):
            _verify(verifier, token)


def test_service_keys_vouch_only_for_their_own_service(infra: Infra) -> None:
    client = _root(infra.vault)
    verifier = _verifier(client)
    signer = TransitSigner(client, service_key("strategy"))
    service = {"tid": "", "role": "service"}
    principal = _verify(verifier, signer.sign({"sub": "service:strategy", **service}, 60))
    assert (principal.role, principal.user_id) == (Role.SERVICE, "service:strategy")
    for claims in (
        {"sub": "service:execution", **service},
        _user_claims(),
        {**_user_claims(), "role": "admin"},
    ):
        with pytest.raises(Unauthenticated, match="cannot vouch"):
            _verify(verifier, signer.sign(claims, 60))
    with pytest.raises(Unauthenticated, match="cannot vouch"):
        _verify(verifier, TransitSigner(client).sign({"sub": "service:strategy", **service}, 60))


def _start_vault(folder: Path) -> EmbeddedOpenBao:
    return EmbeddedOpenBao(data_dir=folder).start()


def test_a_data_folder_with_ed25519_keys_gains_rsa_keys_and_old_tokens_keep_verifying(tmp_path: Path) -> None:
    """A launcher re-run on a data folder from before RS256 (Ed25519 keys under the old names)."""
    vault = _start_vault(tmp_path / "vault")
    try:
        client = _root(vault)
        # Make it an old folder: only the Ed25519 keys of the old names, no RS256 keys.
        for name in (USER_KEY, service_key("execution")):
            client.secrets.transit.update_key_configuration(name, deletion_allowed=True)
            client.secrets.transit.delete_key(name)
        client.secrets.transit.create_key(LEGACY_USER_KEY, key_type="ed25519")
        client.secrets.transit.create_key("service-execution", key_type="ed25519")
        old_api_token = TransitSigner(client, LEGACY_USER_KEY).sign(_user_claims(typ="access"), 3600)
        old_service_token = TransitSigner(client, "service-execution").sign(
            {"sub": "service:execution", "tid": "", "role": "service"}, 600
        )
        assert _parts(old_api_token)[0]["alg"] == "EdDSA"
    finally:
        vault.stop()
    vault = _start_vault(tmp_path / "vault")
    try:
        client = _root(vault)
        for name in (USER_KEY, service_key("execution")):
            assert client.secrets.transit.read_key(name)["data"]["type"] == "rsa-2048"
        assert client.secrets.transit.read_key(LEGACY_USER_KEY)["data"]["type"] == "ed25519"
        verifier = _verifier(client)
        assert _verify(verifier, old_api_token).role is Role.TRADER
        assert _verify(verifier, old_service_token).user_id == "service:execution"
        # New tokens are RS256, and the services' own Vault tokens may sign with their new keys.
        fresh = TransitSigner(hvac.Client(url=vault.addr, token=vault.service_tokens["tenants"])).sign(
            _user_claims(), 60
        )
        assert _parts(fresh)[0]["alg"] == "RS256" and _verify(verifier, fresh).tenant_id == "tenant-a"
        execution = hvac.Client(url=vault.addr, token=vault.service_tokens["execution"])
        token = TransitSigner(execution, service_key("execution")).sign(
            {"sub": "service:execution", "tid": "", "role": "service"}, 60
        )
        assert _verify(verifier, token).role is Role.SERVICE
        # An RS256 header cannot borrow the Ed25519 key's kid.
        header, claims = _parts(old_api_token)
        forged = jwt.encode(
            claims,
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            algorithm="RS256",
            headers={"kid": header["kid"]},
        )
        with pytest.raises(Unauthenticated, match="not the algorithm of its key"):
            _verify(verifier, forged)
    finally:
        vault.stop()
