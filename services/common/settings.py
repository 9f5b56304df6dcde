"""Typed settings from environment variables, shared by every service.

A service declares a subclass of `ServiceSettings` with its own fields; `load_settings` reads the
environment once at start and stops the process with a message naming the bad variable, so a typo in
a deployment fails at start instead of at the first trade.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.bybit import BybitEnv, BybitVenue

S = TypeVar("S", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """Settings every service has. Each field is read from the upper-case variable of its name."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    grpc_host: str = Field("127.0.0.1", description="Address the gRPC server binds to")
    grpc_port: int = Field(0, ge=0, le=65535, description="gRPC port (0 picks a free port)")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port (0 picks a free port)")
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level")
    shutdown_grace_seconds: float = Field(
        10.0, gt=0, le=300, description="How long in-flight RPCs may finish after SIGTERM"
    )
    tenants_addr: str = Field(
        "", description="host:port of the tenants service, whose JWKS verifies access tokens"
    )
    nats_url: str = Field("", description="NATS server URL, e.g. nats://127.0.0.1:4222")
    database_url: str = Field("", description="PostgreSQL URL, e.g. postgresql://user@host:5432/tradebot")
    vault_addr: str = Field("", description="Vault (or OpenBao) address, e.g. http://127.0.0.1:8200")
    vault_token: str = Field(
        "", description="Vault token for local runs (Kubernetes auth is used in a cluster)"
    )
    vault_k8s_role: str = Field(
        "", description="Vault Kubernetes auth role; set in a cluster instead of a token"
    )
    bybit_env: str = Field(
        "simulator",
        pattern="^(simulator|testnet|demo|mainnet)$",
        description="Which Bybit to talk to: simulator, testnet, demo or mainnet",
    )
    bybit_simulator_url: str = Field(
        "http://127.0.0.1:8900", description="Base URL of the bundled simulator when BYBIT_ENV=simulator"
    )
    ready_file: str = Field("", description="If set, the service writes its bound ports here once serving")

    def bybit_venue(self) -> BybitVenue:
        return BybitVenue(BybitEnv(self.bybit_env), self.bybit_simulator_url)


class SettingsError(SystemExit):
    """Raised (and exits the process) when the environment does not describe a valid configuration."""


def describe_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]).upper()
        given = item.get("input")
        shown = "" if given is None or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {name}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_settings(cls: type[S], service: str) -> S:
    """Read settings for `service` or exit with status 2 and one line per bad variable."""
    try:
        return cls()
    except ValidationError as error:
        message = f"{service}: invalid settings, not starting:\n{describe_errors(error)}"
        print(message, file=sys.stderr, flush=True)
        raise SettingsError(2) from None
