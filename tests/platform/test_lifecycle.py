"""A service's life: it refuses bad settings at start, and stops gracefully on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from services.devstack.platform import REPO, grpc_health
from services.devstack.processes import free_port
from tests.platform.slow_service import METHOD


def start_slow_service(tmp_path: Path, grace: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    ready = tmp_path / "ready.json"
    env = {
        **os.environ,
        "GRPC_PORT": str(port),
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "READY_FILE": str(ready),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.platform.slow_service"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "slow service did not start"
        time.sleep(0.05)
    assert json.loads(ready.read_text())["grpc_port"] == port
    return proc, f"127.0.0.1:{port}"


def call_sleep(address: str, seconds: float, results: list[object]) -> None:
    with grpc.insecure_channel(address) as channel:
        try:
            call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
            results.append(call(str(seconds).encode(), timeout=30))
        except grpc.RpcError as error:
            results.append(error.code())


def test_sigterm_lets_in_flight_rpcs_finish_and_stops_within_grace(tmp_path: Path) -> None:
    proc, address = start_slow_service(tmp_path, grace=5.0)
    results: list[object] = []
    caller = threading.Thread(target=call_sleep, args=(address, 1.5, results))
    caller.start()
    time.sleep(0.5)  # the RPC is now in flight
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    assert grpc_health(address) in {"NOT_SERVING", "STARTING"}, "health must stop saying SERVING at once"
    caller.join(10)
    proc.wait(10)
    stopped_after = time.monotonic() - sent
    assert results == [b"finished"], "the in-flight RPC must complete normally"
    assert proc.returncode == 0
    assert stopped_after < 5.0, f"stopped after {stopped_after:.1f}s, beyond the 5s grace period"
    lines = [json.loads(line) for line in proc.stdout.read().decode().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
    messages = [line["message"] for line in lines]
    assert messages.index("stopping") < messages.index("stopped")


def test_rpcs_longer_than_the_grace_period_are_cut_off(tmp_path: Path) -> None:
    proc, address = start_slow_service(tmp_path, grace=1.0)
    results: list[object] = []
    caller = threading.Thread(target=call_sleep, args=(address, 20, results))
    caller.start()
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    caller.join(10)
    assert time.monotonic() - sent < 3.0
    assert results and results[0] in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}


def run_to_exit(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a service that is expected to refuse to start, with `env` over this environment."""
    return subprocess.run(
        [sys.executable, "-m", module],
        check=False,
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("module", "variable", "value"),
    [
        ("services.marketdata", "GRPC_PORT", "fifty"),
        ("services.execution", "SHUTDOWN_GRACE_SECONDS", "-3"),
        ("services.strategy", "LOG_LEVEL", "CHATTY"),
        ("services.dashboard", "DASHBOARD_PORT", "http"),
    ],
)
def test_a_malformed_setting_stops_the_service_naming_it(module: str, variable: str, value: str) -> None:
    result = run_to_exit(module, {variable: value})
    assert result.returncode == 2
    assert variable in result.stderr
    assert repr(value) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_another_grpc_server_holds_stops_the_service_naming_it(tmp_path: Path) -> None:
    """gRPC binds with SO_REUSEPORT by default, so a second server on a taken port would start and share
    the port's connections with the first (calls meant for one answered by the other). The runtime binds
    exclusively: the service stops and names the port."""
    holder = grpc.server(ThreadPoolExecutor(1))  # another service, with gRPC's default socket options
    port = holder.add_insecure_port("127.0.0.1:0")
    holder.start()
    try:
        ready = str(tmp_path / "ready.json")
        result = run_to_exit("tests.platform.slow_service", {"GRPC_PORT": str(port), "READY_FILE": ready})
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
        assert f"GRPC_PORT {port}" in result.stderr and "another process holds it" in result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "ready.json").exists()
    finally:
        holder.stop(None)
