"""Real infrastructure for tests: PostgreSQL, NATS and OpenBao processes on free ports, and the
platform's services as real processes, started the same way `make run` starts them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from services.devstack.nats import EmbeddedNats
from services.devstack.openbao import EmbeddedOpenBao
from services.devstack.platform import ServiceProcess, plan_services
from services.devstack.postgres import EmbeddedPostgres
from tests.helpers.waiting import wait_serving


@dataclass
class Infra:
    postgres: EmbeddedPostgres
    nats: EmbeddedNats
    vault: EmbeddedOpenBao

    @property
    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.postgres.url, "NATS_URL": self.nats.url, "VAULT_ADDR": self.vault.addr}

    def stop(self) -> None:
        for part in (self.vault, self.nats, self.postgres):
            part.stop()


def start_infra(folder: Path) -> Infra:
    """Start the three in parallel: OpenBao's first initialisation dominates, so this saves seconds."""
    with ThreadPoolExecutor(3) as pool:
        postgres = pool.submit(EmbeddedPostgres(folder / "postgres").start)
        nats = pool.submit(EmbeddedNats(folder / "nats").start)
        vault = pool.submit(EmbeddedOpenBao(folder / "openbao").start)
        return Infra(postgres.result(), nats.result(), vault.result())


@dataclass
class Platform:
    infra: Infra
    services: dict[str, ServiceProcess]

    def address(self, name: str) -> str:
        return self.services[name].address

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()


def start_platform(infra: Infra, logs: Path, timeout: float = 90.0) -> Platform:
    services = plan_services(infra.env, logs, infra.vault.service_tokens, base_port=0)
    for service in services:
        service.start()
    platform = Platform(infra, {service.name: service for service in services})
    try:
        wait_serving(platform.services, logs, timeout=timeout, what="platform")
    except RuntimeError:
        platform.stop()
        raise
    return platform
