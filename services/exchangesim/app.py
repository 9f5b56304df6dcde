"""Wiring: one aiohttp server with Bybit V5 REST, public/private streams and the admin API on one port.

Embed it from async code::

    sim = Simulator(SimConfig(port=0, paused=True))
    await sim.start()          # sim.port is the bound port
    ...
    await sim.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from services.exchangesim import rest
from services.exchangesim.accounts import Accounts, ApiKey
from services.exchangesim.admin import Admin
from services.exchangesim.auth import ServerClock
from services.exchangesim.candles import MINUTE_MS, Series, read_csv
from services.exchangesim.faults import Faults
from services.exchangesim.instruments import Catalog, derive
from services.exchangesim.market import Clock, Market
from services.exchangesim.matching import Engine
from services.exchangesim.ratelimit import RateLimiter
from services.exchangesim.venue import Venue
from services.exchangesim.ws_private import PrivateStreams
from services.exchangesim.ws_public import PublicStreams

log = logging.getLogger(__name__)
DATA = Path(__file__).resolve().parent / "data"
BUNDLED = (DATA / "SOLUSDT-1h.csv", DATA / "XRPUSDT-1h.csv")


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 0
    data_files: tuple[Path, ...] = BUNDLED
    random_walk: dict[str, Decimal] = field(default_factory=dict)  # symbol -> start price
    seconds_per_candle: float = 2.0
    seed: int = 0
    paused: bool = False
    history_candles: int = 200
    base_minutes: int = 60  # only used when there are no data files
    funding_rate: Decimal | None = None
    idle_timeout_s: float = 60.0
    ip_limit: int = 600
    ip_window_s: float = 5.0
    ban_s: float = 600.0
    admin_token: str | None = None


def symbol_of(path: Path) -> str:
    return path.stem.split("-")[0].upper()


def build_market(config: SimConfig) -> tuple[Market, Catalog]:
    loaded = [(symbol_of(p), *read_csv(p)) for p in config.data_files]
    intervals = {interval for _, _, interval, _ in loaded}
    if len(intervals) > 1:
        raise ValueError("every data file must have the same candle interval")
    interval_ms = intervals.pop() if intervals else config.base_minutes * MINUTE_MS
    minutes = interval_ms // MINUTE_MS
    anchor = loaded[0][1] if loaded else 1_704_067_200_000  # 2024-01-01T00:00Z for pure random walks
    catalog = Catalog()
    series = []
    for symbol, _, _, candles in loaded:
        linear = derive("linear", symbol, candles[0].close)
        series.append(Series(symbol, minutes, candles, linear.tick_size, config.seed))
    for symbol, start in config.random_walk.items():
        tick = derive("linear", symbol, start).tick_size
        series.append(
            Series.random_walk(
                symbol, minutes, start=start, tick=tick, seed=config.seed, n=config.history_candles + 1
            )
        )
    if not series:
        raise ValueError("no market: give data files or random-walk symbols")
    for s in series:
        for category in ("linear", "spot"):
            catalog.add(derive(category, s.symbol, s.candles[0].close))
    clock = Clock(minutes, config.seconds_per_candle, config.paused)
    clock.minute = config.history_candles * minutes
    return Market(series, anchor, clock, config.seed), catalog


class Simulator:
    """The whole simulated exchange; `start()` binds the port (0 = any free port)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        market, catalog = build_market(self.config)
        accounts = Accounts()
        engine = Engine(market, catalog, accounts, self.config.seed, self.config.funding_rate)
        limiter = RateLimiter(self.config.ip_limit, self.config.ip_window_s, self.config.ban_s)
        self.venue = Venue(
            catalog, market, engine, accounts, ServerClock(), limiter, Faults(self.config.seed)
        )
        idle = self.config.idle_timeout_s
        self.public = {c: PublicStreams(self.venue, c, idle) for c in ("linear", "spot")}
        self.private = PrivateStreams(self.venue, idle)
        self.admin = Admin(self.venue, self.drop_streams, self.config.admin_token)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._clock_task: asyncio.Task[None] | None = None

    # convenience for embedding code and tests -------------------------------------------------
    @property
    def clock(self) -> Clock:
        return self.venue.market.clock

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}"

    def create_account(self, balances: dict[str, str], **options: Any) -> ApiKey:
        account = self.venue.accounts.create({k: Decimal(v) for k, v in balances.items()})
        return self.venue.accounts.add_key(account.uid, **options)

    def drop_streams(self, scope: str = "all", abort: bool = False) -> int:
        dropped = 0
        if scope in ("all", "public"):
            dropped += sum(p.drop_all(abort) for p in self.public.values())
        if scope in ("all", "private"):
            dropped += self.private.drop_all(abort)
        return dropped

    # lifecycle ------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application()

        async def rest_handler(request: web.Request) -> web.StreamResponse:
            return await rest.handle(self.venue, request)

        app.add_routes(self.admin.routes())
        app.add_routes(
            [
                web.get("/v5/public/linear", self.public["linear"].handle),
                web.get("/v5/public/spot", self.public["spot"].handle),
                web.get("/v5/private", self.private.handle),
                web.route("*", "/{tail:.*}", rest_handler),
            ]
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._clock_task = asyncio.get_running_loop().create_task(self.clock.run())
        log.info("exchange simulator listening on %s", self.http_url)

    async def stop(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
        self.drop_streams("all", abort=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
