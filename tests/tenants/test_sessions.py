"""Login, lockout, refresh-token rotation and reuse, token tampering, TOTP and step-up."""

from __future__ import annotations

import base64
import json
import time

import grpc
import jwt
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.tenants.conftest import PASSWORD, Stack


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(stack: Stack) -> None:
    owner = await stack.new_tenant("refresh")
    first = owner.tokens.refresh_token
    second = (await stack.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first))).tokens
    third = (await stack.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=second.refresh_token))).tokens
    # The stolen first token comes back: refused, and the legitimate newest token dies with it.
    with pytest.raises(grpc.aio.AioRpcError) as reuse:
        await stack.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=first))
    assert reuse.value.code() == grpc.StatusCode.UNAUTHENTICATED and "already used" in str(
        reuse.value.details()
    )
    assert await _code(
        stack.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=third.refresh_token))
    ) == (grpc.StatusCode.UNAUTHENTICATED)
    events = await stack.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(action="session."), metadata=owner.meta
    )
    assert "session.reuse_detected" in [e.action for e in events.events]


async def test_logout_ends_the_session(stack: Stack) -> None:
    owner = await stack.new_tenant("logout")
    reply = await stack.stub.Logout(
        pb.LogoutRequest(refresh_token=owner.tokens.refresh_token), metadata=owner.meta
    )
    assert reply.ended_sessions == 1
    assert (
        await _code(stack.stub.RefreshToken(pb.RefreshTokenRequest(refresh_token=owner.tokens.refresh_token)))
        == grpc.StatusCode.UNAUTHENTICATED
    )


async def test_repeated_failures_lock_the_account_and_unknown_emails_alike(stack: Stack) -> None:
    owner = await stack.new_tenant("lockout")
    for address in (owner.email, stack.unique_email("nobody")):
        codes = [
            await _code(stack.stub.Login(pb.LoginRequest(email=address, password="Wrong-pass-123!")))
            for _ in range(5)
        ]
        assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 5
        with pytest.raises(grpc.aio.AioRpcError) as locked:
            await stack.stub.Login(pb.LoginRequest(email=address, password=PASSWORD))
        assert locked.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry after" in str(locked.value.details())
    events = await stack.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(action="user.login.failure"), metadata=owner.meta
    )
    assert len(events.events) == 5 and events.events[0].details["locked_seconds"] == "30"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_expired_tampered_unsigned_and_foreign_key_tokens_are_refused(stack: Stack) -> None:
    owner = await stack.new_tenant("jwt")
    header, payload, signature = owner.tokens.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    hdr = json.loads(base64.urlsafe_b64decode(header + "=="))
    promoted = f"{header}.{_b64({**claims, 'role': 'admin'})}.{signature}"
    unsigned = f"{_b64({**hdr, 'alg': 'none'})}.{payload}."
    assert hdr["alg"] == "RS256"
    foreign = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": hdr["kid"]})
    foreign_rsa = jwt.encode(
        claims,
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": hdr["kid"]},
    )
    hmac = jwt.encode(claims, "secret", algorithm="HS256", headers={"kid": hdr["kid"]})
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 5},
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": hdr["kid"]},
    )
    signer = stack.deps.issuer.signer
    really_expired = signer.sign(
        {k: v for k, v in claims.items() if k not in {"exp", "iat", "iss", "aud"}}, -60
    )
    for bad in (
        promoted,
        unsigned,
        foreign,
        foreign_rsa,
        hmac,
        expired,
        really_expired,
        "garbage",
        owner.tokens.refresh_token,
    ):
        code = await _code(
            stack.stub.GetMe(pb.GetMeRequest(), metadata=(("authorization", f"Bearer {bad}"),))
        )
        assert code == grpc.StatusCode.UNAUTHENTICATED, bad[:30]


async def test_totp_is_required_at_login_and_for_step_up(stack: Stack) -> None:
    owner = await stack.new_tenant("totp")
    await stack.enable_totp(owner)
    first = await stack.stub.Login(pb.LoginRequest(email=owner.email, password=PASSWORD))
    assert first.totp_required and not first.tokens.access_token
    assert (
        await _code(
            stack.stub.Login(pb.LoginRequest(email=owner.email, password=PASSWORD, totp_code="000000"))
        )
        == grpc.StatusCode.UNAUTHENTICATED
    )
    # Step-up: a sensitive call without a code, or with a wrong one, is refused.
    key = await stack.exchange_key()
    put = pb.PutExchangeCredentialsRequest(
        api_key=key["apiKey"], api_secret=key["apiSecret"], environment=pb.EXCHANGE_ENVIRONMENT_DEMO
    )
    for code in ("", "123456"):
        put.totp_code = code
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.PutExchangeCredentials(put, metadata=owner.meta)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED and "TOTP" in str(
            refused.value.details()
        )
    totp = pyotp.TOTP(owner.totp_secret)
    # The code that confirmed enrolment cannot be replayed: use the next step's (clock drift window).
    put.totp_code = totp.at(time.time() + 30)
    reply = await stack.stub.PutExchangeCredentials(put, metadata=owner.meta)
    assert reply.status.present
    assert await _code(stack.stub.PutExchangeCredentials(put, metadata=owner.meta)) == (
        grpc.StatusCode.PERMISSION_DENIED
    ), "a TOTP code is accepted only once"
    login = await stack.stub.Login(
        pb.LoginRequest(email=owner.email, password=PASSWORD, totp_code=owner.recovery_codes[0])
    )
    assert login.tokens.access_token
