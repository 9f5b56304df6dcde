"""People on the platform, made through tenants' public API as clients are: the admin invites, the
invitation email lands in the outbox folder, the person signs up with the code it holds."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any, Protocol

import pyotp
from tradebot.tenants.v1 import tenants_service_pb2 as tp
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tp_rpc

from services.devstack.simulator import EmbeddedSimulator
from tests.helpers.waiting import eventually

PASSWORD = "Correct-Horse-42!"
TOTP_STEP = 30


class Caller(Protocol):
    """Whoever calls an API: the metadata carrying their access token."""

    @property
    def meta(self) -> tuple[tuple[str, str], ...]: ...


@dataclass
class Person:
    email: str
    tokens: tp.AuthTokens
    user: tp.User = field(default_factory=tp.User)
    totp_secret: str = ""
    recovery_codes: tuple[str, ...] = ()
    last_step: int = 0  # the newest TOTP time step used: tenants accepts each step once

    @property
    def meta(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens.access_token}"),)

    def fresh_code(self) -> str:
        """A TOTP code of a step not used before; tenants takes one step either side of now, so this
        waits only when the next step is used up too."""
        totp = pyotp.TOTP(self.totp_secret)
        while True:
            current = int(time.time() // TOTP_STEP)
            for step in (current, current + 1):
                if step > self.last_step:
                    self.last_step = step
                    return totp.at(step * TOTP_STEP)
            time.sleep(1)


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


def invite_token(outbox: Path, email: str, within: float = 30.0) -> str:
    """The invite code from the newest email to `email` in the outbox."""

    def newest() -> str | None:
        for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = message_from_bytes(path.read_bytes())
            if message["To"] == email:
                body = bytes(message.get_payload(decode=True)).decode()
                return body.split("invite code on the sign-up page: ")[1].split()[0]
        return None

    return eventually(newest, within, f"an invitation for {email}", every=0.2)


def sign_up(tenants: tp_rpc.TenantsServiceStub, token: str, email: str, tenant_name: str = "") -> Person:
    reply = tenants.SignUp(
        tp.SignUpRequest(
            invite_token=token,
            email=email,
            password=PASSWORD,
            display_name="Pat",
            tenant_name=tenant_name,
        ),
        timeout=30,
    )
    return Person(email, reply.tokens, reply.user)


def new_client(tenants: tp_rpc.TenantsServiceStub, outbox: Path, admin: Caller, label: str) -> Person:
    """The admin invites a client as the first OWNER of a new tenant; the client signs up."""
    email = unique_email(label)
    invite = tenants.CreateInvite(
        tp.CreateInviteRequest(email=email, new_tenant=True), metadata=admin.meta, timeout=30
    )
    assert invite.invite.new_tenant and invite.invite_token
    return sign_up(tenants, invite_token(outbox, email), email, tenant_name=f"{label} {uuid.uuid4().hex[:4]}")


def add_member(tenants: tp_rpc.TenantsServiceStub, owner: Caller, role: int, label: str = "member") -> Person:
    """Someone the owner invites into their tenant with `role`; the invite code comes in the reply."""
    email = unique_email(label)
    reply = tenants.CreateInvite(
        tp.CreateInviteRequest(email=email, role=role), metadata=owner.meta, timeout=30
    )
    return sign_up(tenants, reply.invite_token, email)


def open_account(simulator: EmbeddedSimulator, note: str, usdt: str = "100000") -> dict[str, Any]:
    """A fresh account on the simulator: its uid, apiKey and apiSecret."""
    return simulator.admin("accounts", {"balances": {"USDT": usdt}, "note": note})


def store_keys(
    tenants: tp_rpc.TenantsServiceStub,
    client: Caller,
    account: dict[str, Any],
    *,
    environment: int = tp.EXCHANGE_ENVIRONMENT_DEMO,
    totp_code: str = "",
) -> tp.ExchangeCredentialsStatus:
    """The account's key stored as the client's exchange key (tenants checks it against the exchange)."""
    return tenants.PutExchangeCredentials(
        tp.PutExchangeCredentialsRequest(
            api_key=account["apiKey"],
            api_secret=account["apiSecret"],
            environment=environment,
            totp_code=totp_code,
        ),
        metadata=client.meta,
        timeout=60,
    ).status
