"""The bundled Bybit V5 simulator as a process: the exchange of a local run (BYBIT_ENV=simulator).

The local run replays the bundled real hourly candles faster than real time. Its market clock starts
paused, so the services and the demo bot are ready before the first replayed candle closes, and the
place it had reached is remembered in `replay.json`: a later start resumes the replay there instead of
replaying hours the platform's database has already seen (docs/decisions/0060-devstack-demo.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.devstack.processes import EmbeddedServer, free_port, log_file, wait_until

REPO = Path(__file__).resolve().parents[2]
# Base candles of history before the replay's first live candle: strategies warm up on it.
DEFAULT_HISTORY = 200


@dataclass
class EmbeddedSimulator(EmbeddedServer):
    seconds_per_candle: float = 2.0
    history: int = DEFAULT_HISTORY
    paused: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/v5/market/time", timeout=1) as response:
            return bool(response.status == 200)

    def start(self, timeout: float = 30.0) -> EmbeddedSimulator:
        self.port = self.port or free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "services.exchangesim",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--speed",
            str(self.seconds_per_candle),
            "--history",
            str(self.history),
        ]
        self.proc = subprocess.Popen(
            [*command, "--paused"] if self.paused else command,
            cwd=REPO,
            stdout=log_file(self.data_dir, "exchangesim"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, timeout, "the Bybit simulator", self.proc)
        return self

    def admin(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call of the simulator's admin API (GET without a body, POST with one)."""
        return simulator_admin(self.url, path, body)

    def resume(self, seconds_per_candle: float) -> None:
        self.admin("clock", {"action": "speed", "seconds_per_candle": seconds_per_candle})
        self.admin("clock", {"action": "resume"})


def simulator_admin(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/admin/{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


class ReplayPoint:
    """Where the replay stands, kept in `<data>/replay.json` across runs of the local platform."""

    def __init__(self, data: Path) -> None:
        self.path = data / "replay.json"

    def history(self) -> int:
        """Candles before the clock's start: the default on a first run, else where the last run stopped."""
        if not self.path.exists():
            return DEFAULT_HISTORY
        return max(DEFAULT_HISTORY, int(json.loads(self.path.read_text())["candles"]))

    def save(self, simulator: EmbeddedSimulator) -> None:
        """Remember the clock (rounded up to the next whole candle: the current one was partly replayed)."""
        clock = simulator.admin("clock")
        per_candle = int(clock["minutes_per_candle"])
        candles = -(-int(clock["minute"]) // per_candle)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"candles": candles}))
