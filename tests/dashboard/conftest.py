"""A platform slice for the dashboard: the exchange simulator, every service as a real process on free
ports (tenants inviting a first admin into an outbox folder, marketdata on the simulator), and the
dashboard itself; plus helpers that make tenants and users through the public API, as clients do."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

import grpc
import pyotp
import pytest
from streamlit.testing.v1 import AppTest
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.devstack.platform import ServiceProcess, plan_services
from services.devstack.simulator import EmbeddedSimulator
from tests.helpers.infra import Infra

PASSWORD = "Correct-Horse-42!"
APP = str(Path(__file__).resolve().parents[2] / "services" / "dashboard" / "app.py")


@dataclass
class Member:
    email: str
    user: pb.User
    tokens: pb.AuthTokens
    totp_secret: str = ""
    recovery_codes: tuple[str, ...] = ()

    @property
    def meta(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens.access_token}"),)


@dataclass
class Slice:
    services: dict[str, ServiceProcess]
    outbox: Path
    simulator: EmbeddedSimulator
    tenants: rpc.TenantsServiceStub
    admin: Member

    def address(self, name: str) -> str:
        return self.services[name].address

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.address('dashboard')}"

    def env(self) -> dict[str, str]:
        """What the dashboard reads, for AppTest runs inside the test process."""
        return {f"{name.upper()}_ADDR": self.address(name) for name in GRPC_NAMES}

    def invite_token(self, email: str) -> str:
        for path in sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = message_from_bytes(path.read_bytes())
            if message["To"] == email:
                body = bytes(message.get_payload(decode=True)).decode()
                return body.split("invite code on the sign-up page: ")[1].split()[0]
        raise AssertionError(f"no invitation for {email}")

    def signup(self, token: str, email: str, tenant_name: str = "") -> Member:
        reply = self.tenants.SignUp(
            pb.SignUpRequest(
                invite_token=token,
                email=email,
                password=PASSWORD,
                display_name="Pat",
                tenant_name=tenant_name,
            )
        )
        return Member(email, reply.user, reply.tokens)

    def new_tenant(self, label: str = "org") -> Member:
        """A tenant's first OWNER: the admin invites, the email arrives, the person signs up."""
        email = unique_email(label)
        self.tenants.CreateInvite(
            pb.CreateInviteRequest(email=email, new_tenant=True), metadata=self.admin.meta
        )
        return self.signup(self.invite_token(email), email, tenant_name=f"{label} {uuid.uuid4().hex[:4]}")

    def add_member(self, owner: Member, role: int, label: str = "member") -> Member:
        email = unique_email(label)
        reply = self.tenants.CreateInvite(pb.CreateInviteRequest(email=email, role=role), metadata=owner.meta)
        return self.signup(reply.invite_token, email)

    def create_bot(self, member: Member, name: str, mode: int = common.TRADING_MODE_PAPER) -> Any:
        """A PPP Vishva bot on SOLUSDT hourly candles, through strategy's public API."""
        with grpc.insecure_channel(self.address("strategy")) as channel:
            return (
                sp_rpc.StrategyServiceStub(channel)
                .CreateBot(
                    sp.CreateBotRequest(
                        name=name,
                        strategy_id="ppp_vishva",
                        template="moderate",
                        category=common.CATEGORY_LINEAR,
                        symbol="SOLUSDT",
                        interval=common.INTERVAL_1_HOUR,
                        mode=mode,
                        capital_allocation="1000",
                    ),
                    metadata=member.meta,
                    timeout=30,
                )
                .bot
            )

    def enable_totp(self, member: Member) -> None:
        enrol = self.tenants.EnrollTotp(pb.EnrollTotpRequest(), metadata=member.meta)
        member.totp_secret = enrol.secret
        confirmed = self.tenants.ConfirmTotp(
            pb.ConfirmTotpRequest(code=pyotp.TOTP(enrol.secret).now()), metadata=member.meta
        )
        member.recovery_codes = tuple(confirmed.recovery_codes)


GRPC_NAMES = ("tenants", "marketdata", "strategy", "execution")
OPTIONAL = {"strategy", "execution"}


def unique_email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture(scope="session")
def dash(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slice]:
    folder = tmp_path_factory.mktemp("dashboard-slice")
    outbox = folder / "outbox"
    simulator = EmbeddedSimulator(folder, port=0, seconds_per_candle=2.0).start()
    suffix = uuid.uuid4().hex[:6]
    env = {**infra.env, "BYBIT_ENV": "simulator", "BYBIT_SIMULATOR_URL": simulator.url}
    services = {s.name: s for s in plan_services(env, folder, infra.vault.service_tokens, base_port=0)}
    admin_email = unique_email("admin")
    # Own schemas, so this slice and the `platform` fixture can share one PostgreSQL.
    services["tenants"].extra_env = {
        "DB_SCHEMA": f"tenants_d{suffix}",
        "ADMIN_EMAIL": admin_email,
        "INVITE_OUTBOX": str(outbox),
    }
    services["marketdata"].extra_env = {"MARKETDATA_DB_SCHEMA": f"marketdata_d{suffix}"}
    # ... and their own JetStream consumers, so a second platform on the same NATS neither steals this
    # slice's candles and signals nor is refused a consumer that is already bound.
    services["execution"].extra_env = {
        "EXECUTION_DB_SCHEMA": f"execution_d{suffix}",
        "EXECUTION_SIGNAL_DURABLE": f"execution-d{suffix}",
    }
    services["strategy"].extra_env = {
        "STRATEGY_DB_SCHEMA": f"strategy_d{suffix}",
        "STRATEGY_CANDLE_DURABLE": f"candles-d{suffix}",
        "STRATEGY_POSITION_DURABLE": f"positions-d{suffix}",
        "STRATEGY_SUBSCRIBER_ID": f"strategy-d{suffix}",
    }
    for service in services.values():
        service.start()
    try:
        _wait_healthy(services, folder)
        channel = grpc.insecure_channel(services["tenants"].address)
        stub = rpc.TenantsServiceStub(channel)
        slice_ = Slice(services, outbox, simulator, stub, Member(admin_email, pb.User(), pb.AuthTokens()))
        slice_.admin = slice_.signup(slice_.invite_token(admin_email), admin_email, tenant_name="Platform")
        yield slice_
        channel.close()
    finally:
        for service in services.values():
            service.stop()
        simulator.stop()


def _wait_healthy(services: dict[str, ServiceProcess], logs: Path, timeout: float = 90.0) -> None:
    """Tenants, marketdata and the dashboard must serve. Strategy and execution are still being built:
    if one of them exits, the slice goes on without it and the pages say it cannot be reached."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {name: s.status() for name, s in services.items()}
        required = {n: st for n, st in statuses.items() if n not in OPTIONAL or not st.startswith("EXITED")}
        if all(status == "SERVING" for status in required.values()):
            return
        if any(status.startswith("EXITED") for status in required.values()):
            break
        time.sleep(0.2)
    tails = {
        name: (logs / f"{name}.log").read_text()[-1500:]
        for name in services
        if (logs / f"{name}.log").exists()
    }
    raise RuntimeError(f"dashboard slice did not become healthy: {statuses}\n{tails}")


@pytest.fixture
def app_env(dash: Slice, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in dash.env().items():
        monkeypatch.setenv(key, value)
    # The cached Platform (channels) is per process; make sure it points at this slice.
    import streamlit as st

    st.cache_resource.clear()


def signed_in(member: Member, **session_state: Any) -> AppTest:
    """An AppTest of the dashboard with `member` signed in through the real Login RPC."""
    app = AppTest.from_file(APP, default_timeout=30)
    app.run()
    app.text_input(key="login_email").input(member.email)
    app.text_input(key="login_password").input(PASSWORD)
    _submit(app)
    assert not app.exception, app.exception
    for key, value in session_state.items():
        app.session_state[key] = value
    return app


def _submit(app: AppTest) -> None:
    form_button = next(b for b in app.button if b.label == "Sign in")
    form_button.click().run()
    if any("authenticator" in i.label.lower() for i in app.text_input):
        raise AssertionError("this helper signs in members without TOTP")


def texts(app: AppTest) -> str:
    """Every sentence on the page."""
    parts = [*app.markdown, *app.caption, *app.info, *app.warning, *app.error, *app.success, *app.title]
    return "\n".join(str(p.value) for p in parts)


os.environ.setdefault("STREAMLIT_GLOBAL_DEVELOPMENT_MODE", "false")
