"""A running slice of the platform for the strategy service's tests: the simulator replaying a copy of a
shared data file (under a symbol no other test uses, so NATS subjects never collide), marketdata and
strategy as real processes on the session's PostgreSQL and NATS, and tenants (from the `platform`
fixture) for the JWKS every service verifies tokens with."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import nats
from nats.aio.client import Client as NatsClient
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb
from tradebot.strategy.v1 import strategy_service_pb2_grpc as rpc

from services.devstack.platform import REPO
from services.exchangesim.app import SimConfig, Simulator
from tests.helpers.infra import Infra, Platform
from tests.helpers.tokens import access_token
from tests.marketdata.helpers import MarketdataProcess, eventually
from tests.strategy.conftest import DATA


def data_copy(folder: Path, source: str = "SOLUSDT-1h.csv", rows: int | None = None) -> tuple[Path, str]:
    """The shared file (optionally its first `rows` candles) under a fresh symbol."""
    symbol = f"S{uuid.uuid4().hex[:8].upper()}USDT"
    lines = (DATA / "ohlcv" / source).read_text().splitlines()
    body = lines[1:] if rows is None else lines[1 : rows + 1]
    path = folder / f"{symbol}-{source.split('-', 1)[1]}"
    path.write_text("\n".join([lines[0], *body]) + "\n")
    return path, symbol


async def start_sim(data_file: Path, history: int) -> Simulator:
    sim = Simulator(SimConfig(port=0, paused=True, data_files=(data_file,), history_candles=history))
    await sim.start()
    return sim


@dataclass
class StrategyProcess:
    infra: Infra
    logs: Path
    env_extra: dict[str, str]
    schema: str = field(default_factory=lambda: f"st_{uuid.uuid4().hex[:10]}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ready_file(self) -> Path:
        return self.logs / f"strategy-{self.schema}.ready.json"

    @property
    def log_file(self) -> Path:
        return self.logs / f"strategy-{self.schema}.log"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.infra.env,
            "VAULT_TOKEN": self.infra.vault.service_tokens["strategy"],
            "STRATEGY_DB_SCHEMA": self.schema,
            "STRATEGY_CANDLE_DURABLE": f"candles-{self.schema}",
            "STRATEGY_POSITION_DURABLE": f"positions-{self.schema}",
            "STRATEGY_RISK_DURABLE": f"risk-{self.schema}",
            "STRATEGY_SUBSCRIBER_ID": f"strategy-{self.schema}",
            "GRPC_PORT": "0",
            "METRICS_PORT": "0",
            "READY_FILE": str(self.ready_file),
            **self.env_extra,
        }

    async def start(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(  # noqa: ASYNC220 (returns at once; the wait below is async)
            [sys.executable, "-m", "services.strategy"], cwd=REPO, env=self.env(), stdout=log, stderr=log
        )
        await eventually(lambda: self.ready_file.exists() or self.proc.poll() is not None, 60, "ready file")  # type: ignore[union-attr]
        assert self.proc.poll() is None, self.log_file.read_text()[-3000:]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{json.loads(self.ready_file.read_text())['grpc_port']}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{json.loads(self.ready_file.read_text())['metrics_port']}/metrics"

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown (crash-only)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Slice:
    platform: Platform
    sim: Simulator
    symbol: str
    data_file: Path
    history: int
    marketdata: MarketdataProcess
    strategy: StrategyProcess
    nc: NatsClient
    channel: grpc.aio.Channel | None = None

    def first_live_bar(self) -> int:
        """Bar of the data file that closes on the simulator's next candle (history comes before it)."""
        return self.history

    async def publish_position(self, event: Any) -> None:
        subject = f"exec.position.{event.position.tenant_id}"
        await self.nc.jetstream().publish(
            subject, event.SerializeToString(), headers={"Nats-Msg-Id": event.event_id}
        )

    @property
    def infra(self) -> Infra:
        return self.platform.infra

    def token(self, tenant: str = "tenant-a", role: str = "owner") -> tuple[tuple[str, str]]:
        return (("authorization", f"Bearer {access_token(self.infra.vault, tenant_id=tenant, role=role)}"),)

    def stub(self) -> rpc.StrategyServiceStub:
        if self.channel is None:
            self.channel = grpc.aio.insecure_channel(self.strategy.address)
        return rpc.StrategyServiceStub(self.channel)

    async def reconnect(self) -> None:
        if self.channel is not None:
            await self.channel.close(None)
        self.channel = None

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close(None)
        await self.nc.drain()
        self.strategy.stop()
        self.marketdata.stop()
        await self.sim.stop()


async def start_slice(platform: Platform, logs: Path, *, rows: int | None = None, history: int = 40) -> Slice:
    data_file, symbol = data_copy(logs, rows=rows)
    sim = await start_sim(data_file, history)
    tenants = {"TENANTS_ADDR": platform.address("tenants")}
    marketdata = MarketdataProcess(
        platform.infra, sim, logs, extra_env={**tenants, "BACKFILL_CANDLES": "1000"}
    )
    await marketdata.start()
    strategy = StrategyProcess(platform.infra, logs, {**tenants, "MARKETDATA_ADDR": marketdata.address})
    await strategy.start()
    nc = await nats.connect(platform.infra.nats.url)
    return Slice(platform, sim, symbol, data_file, history, marketdata, strategy, nc)


def create_request(symbol: str, **fields: object) -> pb.CreateBotRequest:
    request = pb.CreateBotRequest(
        name=f"bot-{uuid.uuid4().hex[:6]}",
        strategy_id="ppp_vishva",
        template="aggressive",
        category=common_pb2.CATEGORY_LINEAR,
        symbol=symbol,
        interval=common_pb2.INTERVAL_1_HOUR,
        mode=common_pb2.TRADING_MODE_PAPER,
        capital_allocation="10000",
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


async def wait(seconds: float) -> None:
    await asyncio.sleep(seconds)
