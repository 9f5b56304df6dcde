"""Waiting in tests: poll until a condition holds (never sleep a guessed time), and wait for a slice of
the platform's service processes to serve, with their log tails when one does not."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TypeVar

from services.devstack.platform import ServiceProcess

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], within: float, what: str, every: float = 0.5) -> T:
    """The first truthy answer of `probe`, polled every `every` seconds for up to `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")


def wait_serving(
    services: Mapping[str, ServiceProcess],
    logs: Path,
    *,
    timeout: float = 120.0,
    optional: Collection[str] = (),
    what: str = "the platform",
) -> None:
    """Every service SERVING; a service in `optional` may instead have exited (the slice goes on without
    it). Stops waiting at the first required service that exits, and names each one's status and log."""
    deadline = time.monotonic() + timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = {name: s.status() for name, s in services.items()}
        required = {n: st for n, st in statuses.items() if n not in optional or not st.startswith("EXITED")}
        if all(status == "SERVING" for status in required.values()):
            return
        if any(status.startswith("EXITED") for status in required.values()):
            break
        time.sleep(0.2)
    tails = {
        name: (logs / f"{name}.log").read_text()[-2000:]
        for name in services
        if (logs / f"{name}.log").exists()
    }
    raise RuntimeError(f"{what} did not become healthy: {statuses}\n{tails}")
