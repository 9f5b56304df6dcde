"""The whole platform for end-to-end journeys: every service as a real process, started the way `make run`
starts them, on the session's PostgreSQL (own schemas) and OpenBao, with a NATS server and a Bybit
simulator of its own. The simulator's clock starts paused on the bundled SOLUSDT hours, so a journey
decides when the market moves. Tenants invites the first platform admin into an outbox folder; the
admin is signed up through the public API, as a person would."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pyotp
import pytest
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.marketdata.v1 import marketdata_service_pb2 as md
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as md_rpc
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as tp
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tp_rpc

from services.devstack.nats import EmbeddedNats
from services.devstack.platform import ServiceProcess, plan_services
from services.devstack.simulator import EmbeddedSimulator
from tests.helpers.infra import Infra
from tests.helpers.invariants import Sources

PASSWORD = "Correct-Horse-42!"
TOTP_STEP = 30
# Seconds of wall time per replayed hourly candle while the journey waits for a signal: fast, yet slow
# enough that the market is paused again within the candle after the signal (before a stop-loss or
# take-profit could close the new position).
FAST_SECONDS_PER_CANDLE = 0.5
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], within: float, what: str, every: float = 0.5) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")


def metric(stack: Stack, service: str, name: str) -> float | None:
    port = stack.services[service].ready_info()["metrics_port"]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def run_market_until(stack: Stack, done: Callable[[], Any], within: float, what: str) -> Any:
    """Replay candles fast until `done` holds, then pause the market again."""
    stack.clock(action="speed", seconds_per_candle=FAST_SECONDS_PER_CANDLE)
    stack.clock(action="resume")
    try:
        return eventually(done, within, what, every=0.1)
    finally:
        stack.clock(action="pause")


@dataclass
class Person:
    email: str
    tokens: tp.AuthTokens
    totp_secret: str = ""
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


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    simulator: EmbeddedSimulator
    outbox: Path
    sources: Sources
    admin: Person
    channels: dict[str, grpc.Channel]

    @property
    def tenants(self) -> tp_rpc.TenantsServiceStub:
        return tp_rpc.TenantsServiceStub(self.channels["tenants"])

    @property
    def marketdata(self) -> md_rpc.MarketDataServiceStub:
        return md_rpc.MarketDataServiceStub(self.channels["marketdata"])

    @property
    def strategy(self) -> sp_rpc.StrategyServiceStub:
        return sp_rpc.StrategyServiceStub(self.channels["strategy"])

    @property
    def execution(self) -> ex_rpc.ExecutionServiceStub:
        return ex_rpc.ExecutionServiceStub(self.channels["execution"])

    def invite_token(self, email: str) -> str:
        """The invite code from the newest email to `email` in the outbox."""
        for path in sorted(self.outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            message = message_from_bytes(path.read_bytes())
            if message["To"] == email:
                body = bytes(message.get_payload(decode=True)).decode()
                return body.split("invite code on the sign-up page: ")[1].split()[0]
        raise AssertionError(f"no invitation for {email}")

    def sign_up(self, token: str, email: str, tenant_name: str) -> Person:
        reply = self.tenants.SignUp(
            tp.SignUpRequest(
                invite_token=token,
                email=email,
                password=PASSWORD,
                display_name="Pat",
                tenant_name=tenant_name,
            ),
            timeout=30,
        )
        return Person(email, reply.tokens)

    def new_client(self, label: str) -> Person:
        """The admin invites a client as the first OWNER of a new tenant; the client signs up."""
        email = f"{label}-{uuid.uuid4().hex[:8]}@example.com"
        invite = self.tenants.CreateInvite(
            tp.CreateInviteRequest(email=email, new_tenant=True), metadata=self.admin.meta, timeout=30
        )
        assert invite.invite.new_tenant and invite.invite_token
        client = self.sign_up(self.invite_token(email), email, tenant_name=f"{label} {uuid.uuid4().hex[:4]}")
        assert self.tenants.GetMe(tp.GetMeRequest(), metadata=client.meta).user.role == tp.ROLE_OWNER
        return client

    def clock(self, **body: Any) -> dict[str, Any]:
        return self.simulator.admin("clock", body or None)


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("e2e")
    outbox = folder / "outbox"
    # Its own NATS: candles, signals and orders of other platforms in the session never reach it.
    nats = EmbeddedNats(folder / "nats").start()
    simulator = EmbeddedSimulator(folder, port=0, seconds_per_candle=2.0, paused=True).start()
    suffix = uuid.uuid4().hex[:6]
    schemas = {name: f"{name}_e{suffix}" for name in ("tenants", "marketdata", "strategy", "execution")}
    env = {
        **infra.env,
        "NATS_URL": nats.url,
        "BYBIT_ENV": "simulator",
        "BYBIT_SIMULATOR_URL": simulator.url,
    }
    services = {s.name: s for s in plan_services(env, folder, infra.vault.service_tokens, base_port=0)}
    admin_email = f"admin-{suffix}@example.com"
    services["tenants"].extra_env = {
        "DB_SCHEMA": schemas["tenants"],
        "ADMIN_EMAIL": admin_email,
        "INVITE_OUTBOX": str(outbox),
    }
    services["marketdata"].extra_env = {"MARKETDATA_DB_SCHEMA": schemas["marketdata"]}
    services["strategy"].extra_env = {"STRATEGY_DB_SCHEMA": schemas["strategy"]}
    services["execution"].extra_env = {
        "EXECUTION_DB_SCHEMA": schemas["execution"],
        # Reconcile often, so the platform's records catch up with the exchange within a test's wait.
        "EXECUTION_RECONCILE_INTERVAL_SECONDS": "2",
    }
    channels: dict[str, grpc.Channel] = {}
    try:
        for service in services.values():
            service.start()
        _wait_healthy(services, folder)
        channels = {
            name: grpc.insecure_channel(s.address) for name, s in services.items() if name != "dashboard"
        }
        sources = Sources(
            simulator_url=simulator.url,
            database_url=infra.postgres.url,
            strategy_schema=schemas["strategy"],
            execution_schema=schemas["execution"],
        )
        running = Stack(services, simulator, outbox, sources, Person(admin_email, tp.AuthTokens()), channels)
        running.admin = running.sign_up(running.invite_token(admin_email), admin_email, "Platform")
        eventually(lambda: _verifies_tokens(running), 60, "every service to verify access tokens")
        yield running
    finally:
        for channel in channels.values():
            channel.close()
        for service in services.values():
            service.stop()
        simulator.stop()
        nats.stop()


def _verifies_tokens(stack: Stack) -> bool:
    """Health says a service serves, not that it can reach tenants for the token keys yet: a service
    that asked while tenants was still starting waits out gRPC's reconnect backoff."""
    calls: list[Callable[[], object]] = [
        lambda: stack.marketdata.ListInstruments(
            md.ListInstrumentsRequest(category=common.CATEGORY_LINEAR), metadata=stack.admin.meta, timeout=10
        ),
        lambda: stack.strategy.ListBots(sp.ListBotsRequest(), metadata=stack.admin.meta, timeout=10),
        lambda: stack.execution.ListOrders(ex.ListOrdersRequest(), metadata=stack.admin.meta, timeout=10),
    ]
    try:
        for call in calls:
            call()
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            return False
        raise
    return True


def _wait_healthy(services: dict[str, ServiceProcess], logs: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {name: s.status() for name, s in services.items()}
        if all(status == "SERVING" for status in statuses.values()):
            return
        if any(status.startswith("EXITED") for status in statuses.values()):
            break
        time.sleep(0.2)
    tails = {
        name: (logs / f"{name}.log").read_text()[-1500:]
        for name in services
        if (logs / f"{name}.log").exists()
    }
    raise RuntimeError(f"the platform did not become healthy: {statuses}\n{tails}")
