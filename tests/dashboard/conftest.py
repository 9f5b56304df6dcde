"""A platform slice for the dashboard: the exchange simulator, every service as a real process on free
ports (tenants inviting a first admin into an outbox folder, marketdata on the simulator), and the
dashboard itself; plus helpers that make tenants and users through the public API, as clients do."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pyotp
import pytest
from streamlit.testing.v1 import AppTest
from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as pb
from tradebot.tenants.v1 import tenants_service_pb2_grpc as rpc

from services.devstack.nats import EmbeddedNats
from services.devstack.platform import ServiceProcess
from services.devstack.simulator import EmbeddedSimulator
from tests.helpers import bots, clients
from tests.helpers.clients import PASSWORD, Person, unique_email
from tests.helpers.infra import Infra
from tests.helpers.slices import plan_slice, sign_up_admin
from tests.helpers.waiting import wait_serving

__all__ = ["PASSWORD", "Member", "Slice", "signed_in", "texts", "unique_email"]
APP = str(Path(__file__).resolve().parents[2] / "services" / "dashboard" / "app.py")
# The dashboard's tests call a signed-up person a member (of a tenant).
Member = Person


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
        return clients.invite_token(self.outbox, email)

    def new_tenant(self, label: str = "org") -> Member:
        """A tenant's first OWNER: the admin invites, the email arrives, the person signs up."""
        return clients.new_client(self.tenants, self.outbox, self.admin, label)

    def add_member(self, owner: Member, role: int, label: str = "member") -> Member:
        return clients.add_member(self.tenants, owner, role, label)

    def create_bot(self, member: Member, name: str, mode: int = common.TRADING_MODE_PAPER) -> se.Bot:
        """A PPP Vishva bot on SOLUSDT hourly candles (moderate template), through strategy's public API."""
        with grpc.insecure_channel(self.address("strategy")) as channel:
            strategy = sp_rpc.StrategyServiceStub(channel)
            return bots.create_bot(strategy, member, name=name, template="moderate", mode=mode)

    def enable_totp(self, member: Member) -> None:
        enrol = self.tenants.EnrollTotp(pb.EnrollTotpRequest(), metadata=member.meta)
        member.totp_secret = enrol.secret
        confirmed = self.tenants.ConfirmTotp(
            pb.ConfirmTotpRequest(code=pyotp.TOTP(enrol.secret).now()), metadata=member.meta
        )
        member.recovery_codes = tuple(confirmed.recovery_codes)


GRPC_NAMES = ("tenants", "marketdata", "strategy", "execution")
OPTIONAL = {"strategy", "execution"}


@pytest.fixture(scope="session")
def dash(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slice]:
    folder = tmp_path_factory.mktemp("dashboard-slice")
    # Its own NATS: this slice's market runs all session long, and its candles (same subjects as
    # every other slice's) must not reach the strategy services of other tests.
    nats = EmbeddedNats(folder / "nats").start()
    simulator = EmbeddedSimulator(folder, port=0, seconds_per_candle=2.0).start()
    env = {
        **infra.env,
        "NATS_URL": nats.url,
        "BYBIT_ENV": "simulator",
        "BYBIT_SIMULATOR_URL": simulator.url,
    }
    # Own schemas, so this slice and the `platform` fixture can share one PostgreSQL.
    plan = plan_slice(infra, env, folder, tag="d")
    services = plan.services
    for service in services.values():
        service.start()
    try:
        # Tenants, marketdata and the dashboard must serve. Strategy and execution are still being
        # built: if one of them exits, the slice goes on without it and the pages say it cannot be
        # reached.
        wait_serving(services, folder, timeout=90.0, optional=OPTIONAL, what="dashboard slice")
        channel = grpc.insecure_channel(services["tenants"].address)
        stub = rpc.TenantsServiceStub(channel)
        slice_ = Slice(services, plan.outbox, simulator, stub, Person(plan.admin_email, pb.AuthTokens()))
        slice_.admin = sign_up_admin(plan, stub)
        yield slice_
        channel.close()
    finally:
        for service in services.values():
            service.stop()
        simulator.stop()
        nats.stop()


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
