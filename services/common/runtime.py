"""Start, run and stop a service the same way everywhere.

    run_service("marketdata", MarketdataSettings, setup)

loads settings (exiting with a message naming any bad variable), sets up JSON logs, telemetry and the
`/metrics` endpoint, connects to NATS when configured, lets `setup` register the service's servicers
and background work, serves gRPC with health and reflection, and on SIGTERM/SIGINT shuts down in
order: health NOT_SERVING (load balancers stop sending), consumers stop taking messages, in-flight
RPCs get the grace period to finish, NATS is drained (nothing published is lost), then the service's
own stop hooks run.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

# The asyncio HealthServicer (also exported as grpc_health.v1.health.aio, which the stubs do not know).
from grpc_health.v1._async import HealthServicer

from services.common import bus as bus_module
from services.common import telemetry
from services.common.auth import TokenVerifier, tenants_api_token_check
from services.common.grpc_server import build_server, enable_reflection
from services.common.jwks import tenants_jwks_fetcher
from services.common.logs import configure_logging
from services.common.service_identity import ServiceCredentials
from services.common.settings import ServiceSettings, SettingsError, load_settings
from services.common.signing import TransitSigner, service_key
from services.common.vault import vault_client

log = logging.getLogger("tradebot.runtime")

S = TypeVar("S", bound=ServiceSettings)
StopHook = Callable[[], Awaitable[None]]


@dataclass
class ServiceRuntime:
    """What a service's `setup` gets: the server to register on and the shared connections."""

    name: str
    settings: Any
    server: grpc.aio.Server
    health: HealthServicer
    bus: bus_module.Bus | None
    credentials: ServiceCredentials | None = None
    service_names: list[str] = field(default_factory=list)
    stop_hooks: list[StopHook] = field(default_factory=list)
    # Until the token verifier holds tenants' signing keys, every authenticated call would fail:
    # the service reports NOT_SERVING whatever it asks for, and what it asked for applies after.
    keys_ready: bool = True
    _wanted: bool = field(default=True, init=False)

    def add_servicer(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        """Register a generated servicer; its full name is taken from the generated descriptor."""
        add_to_server(servicer, self.server)
        self.service_names.append(_service_full_name(add_to_server))

    def on_stop(self, hook: StopHook) -> None:
        self.stop_hooks.append(hook)

    async def set_serving(self, serving: bool) -> None:
        """Report readiness of every service of this process (e.g. a stale market feed says False)."""
        self._wanted = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving and self.keys_ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self.service_names]:
            await self.health.set(name, status)

    async def serve_once_keys_loaded(self, verifier: TokenVerifier, poll_seconds: float = 0.5) -> None:
        """Hold NOT_SERVING until `verifier` has fetched tenants' signing keys, then report what the
        service asked for. Retries quickly: channels to platform services reconnect within seconds."""
        self.keys_ready = False
        await self.set_serving(self._wanted)
        while True:
            if await verifier.load_keys():
                break
            await asyncio.sleep(poll_seconds)
        self.keys_ready = True
        log.info("token signing keys loaded")
        await self.set_serving(self._wanted)


def _service_full_name(add_to_server: Callable[..., None]) -> str:
    # Generated `add_FooServiceServicer_to_server` lives in a module whose pb2 sibling holds the descriptor.
    pb2 = importlib.import_module(add_to_server.__module__.removesuffix("_grpc"))
    service = add_to_server.__name__.removeprefix("add_").removesuffix("Servicer_to_server")
    return str(pb2.DESCRIPTOR.services_by_name[service].full_name)


Setup = Callable[[ServiceRuntime], Awaitable[None]]


def run_service(
    name: str,
    settings_cls: type[S],
    setup: Setup,
    *,
    public_methods: Iterable[str] = (),
    check_api_tokens_with_tenants: bool = True,
    token_issuer: bool = False,
) -> None:
    """Entry point of `python -m services.<name>`; returns when the service has stopped.

    `token_issuer`: this service publishes the signing keys itself (tenants), so it does not wait
    for them before serving (behind a load balancer it could never reach itself while not ready)."""
    settings = load_settings(settings_cls, name)
    configure_logging(name, settings.log_level)
    telemetry.configure_telemetry(name)
    asyncio.run(
        serve(
            name,
            settings,
            setup,
            public_methods=public_methods,
            check_api_tokens_with_tenants=check_api_tokens_with_tenants,
            token_issuer=token_issuer,
        )
    )


async def serve(
    name: str,
    settings: ServiceSettings,
    setup: Setup,
    *,
    public_methods: Iterable[str] = (),
    check_api_tokens_with_tenants: bool = True,
    token_issuer: bool = False,
) -> None:
    started = time.monotonic()
    metrics_port = telemetry.serve_metrics(settings.grpc_host, settings.metrics_port)
    verifier = None
    if settings.tenants_addr:
        # Long-lived API tokens are re-checked with tenants so a revocation takes effect within
        # seconds everywhere (docs/decisions/0014); tenants itself checks its own database instead.
        api_check = tenants_api_token_check(settings.tenants_addr) if check_api_tokens_with_tenants else None
        verifier = TokenVerifier(tenants_jwks_fetcher(settings.tenants_addr), api_token_check=api_check)
    server, health = build_server(verifier, public_methods)
    bus = await bus_module.connect(settings.nats_url, name) if settings.nats_url else None
    credentials = None
    if settings.vault_addr:
        signer = TransitSigner(vault_client(settings), service_key(name))
        credentials = ServiceCredentials(signer, name)
    runtime = ServiceRuntime(
        name=name, settings=settings, server=server, health=health, bus=bus, credentials=credentials
    )
    await setup(runtime)
    enable_reflection(server, runtime.service_names)
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        grpc_port = server.add_insecure_port(address)
    except RuntimeError:
        print(
            f"{name}: cannot listen on GRPC_PORT {settings.grpc_port} ({address}): another process holds it",
            file=sys.stderr,
            flush=True,
        )
        raise SettingsError(2) from None
    waiting_for_keys = None
    if verifier is not None and not token_issuer:
        # NOT_SERVING before the port opens (gRPC's health servicer starts out SERVING).
        runtime.keys_ready = False
        await runtime.set_serving(True)
        waiting_for_keys = asyncio.create_task(runtime.serve_once_keys_loaded(verifier))
    await server.start()
    if waiting_for_keys is None:
        await runtime.set_serving(True)
    _write_ready_file(settings.ready_file, grpc_port=grpc_port, metrics_port=metrics_port)
    log.info(
        "serving",
        extra={
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
            "services": runtime.service_names,
            "startup_seconds": round(time.monotonic() - started, 3),
        },
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("stopping", extra={"grace_seconds": settings.shutdown_grace_seconds})
    if waiting_for_keys is not None:
        waiting_for_keys.cancel()
    await health.enter_graceful_shutdown()
    if bus is not None:
        await bus.stop_consuming()
    await server.stop(settings.shutdown_grace_seconds)
    if bus is not None:
        await bus.drain()
    for hook in runtime.stop_hooks:
        await hook()
    log.info("stopped")


def _write_ready_file(path: str, **ports: int) -> None:
    if not path:
        return
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **ports}))
    tmp.replace(target)  # atomic: readers never see half a file
