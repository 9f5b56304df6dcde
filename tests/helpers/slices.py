"""Slices of the platform for tests that share the session's PostgreSQL (and NATS): the services of
`make run` as real processes on free ports, each in schemas of its own, tenants inviting a first
platform admin into an outbox folder."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from tradebot.tenants.v1 import tenants_service_pb2_grpc as tp_rpc

from services.devstack.platform import ServiceProcess, plan_services
from tests.helpers.clients import Person, invite_token, sign_up, unique_email
from tests.helpers.infra import Infra

SCHEMA_SERVICES = ("tenants", "marketdata", "strategy", "execution")


@dataclass
class SlicePlan:
    services: dict[str, ServiceProcess]
    schemas: dict[str, str]
    outbox: Path
    admin_email: str


def plan_slice(
    infra: Infra,
    env: dict[str, str],
    folder: Path,
    *,
    tag: str,
    names: Collection[str] | None = None,
    own_consumers: bool = True,
) -> SlicePlan:
    """The services (all, or `names`) planned on `env`, not started. Schemas are `<service>_<tag><random>`;
    with `own_consumers` strategy and execution also get JetStream consumers of their own, so a second
    platform on the same NATS neither steals this slice's candles and signals nor is refused a consumer
    that is already bound."""
    planned = {s.name: s for s in plan_services(env, folder, infra.vault.service_tokens, base_port=0)}
    services = {name: s for name, s in planned.items() if names is None or name in names}
    unique = f"{tag}{uuid.uuid4().hex[:6]}"
    schemas = {name: f"{name}_{unique}" for name in SCHEMA_SERVICES if name in services}
    plan = SlicePlan(services, schemas, folder / "outbox", unique_email("admin"))
    services["tenants"].extra_env = {
        "DB_SCHEMA": schemas["tenants"],
        "ADMIN_EMAIL": plan.admin_email,
        "INVITE_OUTBOX": str(plan.outbox),
        "TENANTS_AUDIT_DURABLE": f"audit-{unique}",
    }
    if "marketdata" in services:
        services["marketdata"].extra_env = {"MARKETDATA_DB_SCHEMA": schemas["marketdata"]}
    if "strategy" in services:
        services["strategy"].extra_env = {"STRATEGY_DB_SCHEMA": schemas["strategy"]}
        if own_consumers:
            services["strategy"].extra_env |= {
                "STRATEGY_CANDLE_DURABLE": f"candles-{unique}",
                "STRATEGY_POSITION_DURABLE": f"positions-{unique}",
                "STRATEGY_RISK_DURABLE": f"risk-{unique}",
                "STRATEGY_SUBSCRIBER_ID": f"strategy-{unique}",
            }
    if "execution" in services:
        services["execution"].extra_env = {"EXECUTION_DB_SCHEMA": schemas["execution"]}
        if own_consumers:
            services["execution"].extra_env["EXECUTION_SIGNAL_DURABLE"] = f"execution-{unique}"
    return plan


def sign_up_admin(plan: SlicePlan, tenants: tp_rpc.TenantsServiceStub) -> Person:
    """The platform admin tenants invited at its first start, signed up through the public API."""
    return sign_up(tenants, invite_token(plan.outbox, plan.admin_email), plan.admin_email, "Platform")
