"""The whole platform for end-to-end journeys: every service as a real process, started the way `make run`
starts them, on the session's PostgreSQL (own schemas) and OpenBao, with a NATS server and a Bybit
simulator of its own. The simulator's clock starts paused on the bundled SOLUSDT hours, so a journey
decides when the market moves. Tenants invites the first platform admin into an outbox folder; the
admin is signed up through the public API, as a person would."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from tradebot.execution.v1 import execution_service_pb2_grpc as ex_rpc
from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as md_rpc
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc
from tradebot.tenants.v1 import tenants_service_pb2 as tp
from tradebot.tenants.v1 import tenants_service_pb2_grpc as tp_rpc

from services.devstack.nats import EmbeddedNats
from services.devstack.platform import ServiceProcess
from services.devstack.simulator import EmbeddedSimulator
from tests.helpers.clients import Person, new_client
from tests.helpers.infra import Infra
from tests.helpers.invariants import Sources
from tests.helpers.slices import plan_slice, sign_up_admin
from tests.helpers.waiting import eventually, wait_serving

# Seconds of wall time per replayed hourly candle while the journey waits for a signal: fast, yet slow
# enough that the market is paused again within the candle after the signal (before a stop-loss or
# take-profit could close the new position).
FAST_SECONDS_PER_CANDLE = 0.5


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

    def new_client(self, label: str) -> Person:
        """The admin invites a client as the first OWNER of a new tenant; the client signs up."""
        client = new_client(self.tenants, self.outbox, self.admin, label)
        assert self.tenants.GetMe(tp.GetMeRequest(), metadata=client.meta).user.role == tp.ROLE_OWNER
        return client

    def clock(self, **body: Any) -> dict[str, Any]:
        return self.simulator.admin("clock", body or None)


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("e2e")
    # Its own NATS: candles, signals and orders of other platforms in the session never reach it.
    nats = EmbeddedNats(folder / "nats").start()
    simulator = EmbeddedSimulator(folder, port=0, seconds_per_candle=2.0, paused=True).start()
    env = {
        **infra.env,
        "NATS_URL": nats.url,
        "BYBIT_ENV": "simulator",
        "BYBIT_SIMULATOR_URL": simulator.url,
    }
    plan = plan_slice(infra, env, folder, tag="e", own_consumers=False)
    services = plan.services
    # Reconcile often, so the platform's records catch up with the exchange within a test's wait.
    services["execution"].extra_env["EXECUTION_RECONCILE_INTERVAL_SECONDS"] = "2"
    channels: dict[str, grpc.Channel] = {}
    try:
        for service in services.values():
            service.start()
        wait_serving(services, folder)
        channels = {
            name: grpc.insecure_channel(s.address) for name, s in services.items() if name != "dashboard"
        }
        sources = Sources(
            simulator_url=simulator.url,
            database_url=infra.postgres.url,
            strategy_schema=plan.schemas["strategy"],
            execution_schema=plan.schemas["execution"],
        )
        unsigned = Person(plan.admin_email, tp.AuthTokens())
        running = Stack(services, simulator, plan.outbox, sources, unsigned, channels)
        running.admin = sign_up_admin(plan, running.tenants)
        yield running
    finally:
        for channel in channels.values():
            channel.close()
        for service in services.values():
            service.stop()
        simulator.stop()
        nats.stop()
