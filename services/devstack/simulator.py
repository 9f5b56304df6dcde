"""The bundled Bybit V5 simulator as a process: the exchange of a local run (BYBIT_ENV=simulator)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from services.devstack.processes import EmbeddedServer, free_port, log_file, wait_until

REPO = Path(__file__).resolve().parents[2]


@dataclass
class EmbeddedSimulator(EmbeddedServer):
    seconds_per_candle: float = 2.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _answers(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/v5/market/time", timeout=1) as response:
            return bool(response.status == 200)

    def start(self, timeout: float = 30.0) -> EmbeddedSimulator:
        self.port = self.port or free_port(self.host)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.exchangesim",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--speed",
                str(self.seconds_per_candle),
            ],
            cwd=REPO,
            stdout=log_file(self.data_dir, "exchangesim"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._answers, timeout, "the Bybit simulator", self.proc)
        return self
