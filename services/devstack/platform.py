"""The platform's processes for a local run: which services exist, their ports and environments.

Shared by the launcher (`make run`) and the test harness, so both start services the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.processes import bindable, free_port, log_file, port_open, stop_process

REPO = Path(__file__).resolve().parents[2]

GRPC_SERVICES = ("tenants", "marketdata", "strategy", "execution")


@dataclass
class ServiceProcess:
    """One platform service running as its own process (`python -m services.<name>`)."""

    name: str
    env: dict[str, str]
    logs: Path
    port: int
    metrics_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    kind: str = "grpc"  # "grpc" (health over gRPC) or "http" (the dashboard)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ready_file(self) -> Path:
        return self.logs / f"{self.name}.ready.json"

    def ready_info(self) -> dict[str, int]:
        """Ports the service reported once serving (its metrics port is chosen at start)."""
        return dict(json.loads(self.ready_file.read_text()))

    def start(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        env = {**os.environ, **self.env, **self.extra_env, "READY_FILE": str(self.ready_file)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=REPO,
            env=env,
            stdout=log_file(self.logs, self.name),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    def status(self) -> str:
        """SERVING, NOT_SERVING, STARTING, or EXITED(code)."""
        if self.proc is None:
            return "NOT_STARTED"
        if self.proc.poll() is not None:
            return f"EXITED({self.proc.returncode})"
        if self.kind == "http":
            return "SERVING" if http_healthy(f"http://{self.address}/_stcore/health") else "STARTING"
        return grpc_health(self.address)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=timeout)


def grpc_health(address: str, service: str = "", timeout: float = 1.0) -> str:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
    except grpc.RpcError:
        return "STARTING"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def http_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def pick_port(preferred: int, taken: set[int] | None = None) -> int:
    """The preferred port when it is free (stable addresses for people), else any free port; never one
    in `taken`. A port handed out by the kernel is free again once its probe socket closes, so two
    picks for services not yet started can return the same one."""
    taken = set() if taken is None else taken
    free = not port_open("127.0.0.1", preferred) and bindable("127.0.0.1", preferred) if preferred else False
    if free and preferred not in taken:
        taken.add(preferred)
        return preferred
    while (port := free_port()) in taken:
        pass
    taken.add(port)
    return port


def plan_services(
    infra_env: dict[str, str], logs: Path, vault_tokens: dict[str, str], *, base_port: int = 50051
) -> list[ServiceProcess]:
    """The four gRPC services and the dashboard, wired to each other and to the infrastructure."""
    taken: set[int] = set()
    ports = {
        name: pick_port(base_port + i if base_port else 0, taken) for i, name in enumerate(GRPC_SERVICES)
    }
    addresses = {f"{name.upper()}_ADDR": f"127.0.0.1:{port}" for name, port in ports.items()}
    services = []
    for name in GRPC_SERVICES:
        env = {
            **infra_env,
            **addresses,
            "GRPC_PORT": str(ports[name]),
            "METRICS_PORT": "0",
            "VAULT_TOKEN": vault_tokens.get(name, ""),
        }
        services.append(ServiceProcess(name, env, logs, ports[name]))
    dashboard_port = pick_port(8501 if base_port else 0, taken)
    dashboard_env = {**addresses, "DASHBOARD_PORT": str(dashboard_port), "METRICS_PORT": "0"}
    services.append(ServiceProcess("dashboard", dashboard_env, logs, dashboard_port, kind="http"))
    return services
