"""The tenants service in-process against real PostgreSQL, OpenBao, an SMTP server (aiosmtpd) and the
exchange simulator, with helpers to make tenants and users through the public API."""

from __future__ import annotations

import asyncio
import email
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pyotp
import pytest
from aiosmtpd.controller import Controller
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.common.auth import TokenVerifier
from services.common.grpc_server import build_server
from services.common.jwks import tenants_jwks_fetcher
from services.common.signing import TransitSigner, service_key
from services.devstack.processes import free_port
from services.exchangesim.app import SimConfig, Simulator
from services.tenants.bootstrap import invite_first_admin
from services.tenants.core import Deps
from services.tenants.server import PUBLIC_METHODS, Settings, TenantsServicer, build_deps
from tests.helpers.infra import Infra

PASSWORD = "Correct-Horse-42!"


class Inbox:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def token_for(self, address: str) -> str:
        for message in reversed(self.messages):
            if message["To"] == address:
                body = bytes(message.get_payload(decode=True)).decode()
                return body.split("invite code on the sign-up page: ")[1].split()[0]
        raise AssertionError(f"no email to {address}")


@dataclass
class Member:
    user: pb.User
    tokens: pb.AuthTokens
    email: str
    password: str = PASSWORD
    totp_secret: str = ""
    recovery_codes: list[str] = field(default_factory=list)

    @property
    def meta(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens.access_token}"),)

    @property
    def tenant_id(self) -> str:
        return self.user.tenant_id


@dataclass
class Stack:
    infra: Infra
    deps: Deps
    settings: Settings
    address: str
    stub: rpc.TenantsServiceStub
    inbox: Inbox
    sim: Simulator
    log_path: Path
    admin: Member | None = None
    seen: dict[str, Any] = field(default_factory=dict)

    def unique_email(self, label: str) -> str:
        return f"{label}-{uuid.uuid4().hex[:8]}@example.com"

    async def signup(self, token: str, address: str, *, tenant_name: str = "") -> Member:
        reply = await self.stub.SignUp(
            pb.SignUpRequest(
                invite_token=token,
                email=address,
                password=PASSWORD,
                display_name="Pat",
                tenant_name=tenant_name,
            )
        )
        return Member(reply.user, reply.tokens, address)

    async def new_tenant(self, label: str = "org") -> Member:
        """A new tenant through the API: an admin's invite, the email, the sign-up."""
        assert self.admin is not None
        address = self.unique_email(label)
        await self.stub.CreateInvite(
            pb.CreateInviteRequest(email=address, new_tenant=True), metadata=self.admin.meta
        )
        return await self.signup(self.inbox.token_for(address), address, tenant_name=f"{label} ltd")

    async def add_member(self, owner: Member, role: int, label: str = "member") -> Member:
        address = self.unique_email(label)
        reply = await self.stub.CreateInvite(
            pb.CreateInviteRequest(email=address, role=role), metadata=owner.meta
        )
        return await self.signup(reply.invite_token, address)

    async def enable_totp(self, member: Member) -> None:
        enrol = await self.stub.EnrollTotp(pb.EnrollTotpRequest(), metadata=member.meta)
        member.totp_secret = enrol.secret
        confirmed = await self.stub.ConfirmTotp(
            pb.ConfirmTotpRequest(code=pyotp.TOTP(enrol.secret).now()), metadata=member.meta
        )
        member.recovery_codes = list(confirmed.recovery_codes)

    def service_meta(self, service: str = "strategy") -> tuple[tuple[str, str], ...]:
        import hvac

        signer = TransitSigner(
            hvac.Client(url=self.infra.vault.addr, token=self.infra.vault.root_token), service_key(service)
        )
        token = signer.sign({"sub": f"service:{service}", "tid": "", "role": "service"}, 300)
        return (("authorization", f"Bearer {token}"),)

    async def exchange_key(self, **options: Any) -> dict[str, str]:
        body = {"balances": {"USDT": "1000"}, **options}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.sim.http_url}/admin/accounts", json=body) as response,
        ):
            return dict(await response.json())


@pytest.fixture(scope="session")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("tenants")
    log_path = folder / "service.log"
    handler = logging.FileHandler(log_path)
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    sim = Simulator(SimConfig(port=0, paused=True))
    await sim.start()
    settings = Settings(
        database_url=infra.postgres.url,
        vault_addr=infra.vault.addr,
        vault_token=infra.vault.service_tokens["tenants"],
        db_schema=f"tenants_t{uuid.uuid4().hex[:8]}",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        bybit_env="simulator",
        bybit_simulator_url=sim.http_url,
    )
    import hvac

    vault = hvac.Client(url=settings.vault_addr, token=settings.vault_token)
    deps = await asyncio.to_thread(build_deps, settings, vault)
    port = free_port()
    address = f"127.0.0.1:{port}"
    server, _health = build_server(TokenVerifier(tenants_jwks_fetcher(address)), PUBLIC_METHODS)
    rpc.add_TenantsServiceServicer_to_server(TenantsServicer(deps, vault), server)
    server.add_insecure_port(address)
    await server.start()
    channel = grpc.aio.insecure_channel(address)
    stack = Stack(infra, deps, settings, address, rpc.TenantsServiceStub(channel), inbox, sim, log_path)
    admin_email = stack.unique_email("admin")
    token = await asyncio.to_thread(invite_first_admin, deps, admin_email)
    assert token is not None
    stack.admin = await stack.signup(inbox.token_for(admin_email), admin_email, tenant_name="Platform")
    try:
        yield stack
    finally:
        await channel.close(None)
        await server.stop(1)
        await sim.stop()
        smtp.stop()
        deps.db.dispose()
        logging.getLogger().removeHandler(handler)
