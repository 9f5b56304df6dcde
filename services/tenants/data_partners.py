"""The other services that hold a tenant's data, reached for its export and its deletion.

Strategy (bots, signals, backtests) and execution (orders, fills, positions, PnL, risk, accounts) each
answer service-only `ExportTenantData` and `DeleteTenantData` RPCs; tenants calls them with its own
service identity. A service whose address is not configured is not part of this deployment (the
tenants service running alone): it is skipped and the export names it under `not_reached`.
A configured service that cannot be reached fails the whole operation, so a deletion is never
reported done while data remains somewhere.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from tradebot.execution.v1 import execution_service_pb2 as exec_pb
from tradebot.execution.v1 import execution_service_pb2_grpc as exec_rpc
from tradebot.strategy.v1 import strategy_service_pb2 as strategy_pb
from tradebot.strategy.v1 import strategy_service_pb2_grpc as strategy_rpc

from services.common.errors import Unavailable
from services.common.service_identity import platform_channel

Metadata = Callable[[], Awaitable[tuple[tuple[str, str], ...]]]
LOCAL_POOL = (("grpc.use_local_subchannel_pool", 1),)
TIMEOUT_SECONDS = 60.0  # a large tenant's export is a few queries; deletion stops streams first


# Each partner's stub and request messages; both services name the RPCs and messages alike.
APIS: dict[str, tuple[Any, Any]] = {
    "strategy": (strategy_rpc.StrategyServiceStub, strategy_pb),
    "execution": (exec_rpc.ExecutionServiceStub, exec_pb),
}


@dataclass
class Partner:
    name: str
    address: str
    channel: grpc.aio.Channel | None = None

    def method(self, rpc: str) -> tuple[Any, Any]:
        """The stub's method and its request class, e.g. ("DeleteTenantData", DeleteTenantDataRequest)."""
        if self.channel is None:
            # A pool of its own: gRPC shares connections between channels to one address by default,
            # and a shared one still backing off after the service restarted would refuse the retry.
            self.channel = platform_channel(self.address, options=LOCAL_POOL)
        stub_class, messages = APIS[self.name]
        return getattr(stub_class(self.channel), rpc), getattr(messages, f"{rpc}Request")


@dataclass
class DataPartners:
    metadata: Metadata | None
    partners: list[Partner] = field(default_factory=list)
    not_deployed: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, metadata: Metadata | None, *, strategy_addr: str, execution_addr: str) -> DataPartners:
        partners = cls(metadata)
        for name, address in (("strategy", strategy_addr), ("execution", execution_addr)):
            if address:
                partners.partners.append(Partner(name, address))
            else:
                partners.not_deployed.append(name)
        return partners

    async def _call(self, partner: Partner, rpc: str, tenant_id: str) -> Any:
        if self.metadata is None:
            raise Unavailable(f"the tenants service has no service identity to reach {partner.name}")
        method, request = partner.method(rpc)
        try:
            return await method(
                request(tenant_id=tenant_id), metadata=await self.metadata(), timeout=TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE and partner.channel is not None:
                # A fresh channel next time: the old one would sit out its reconnect backoff and
                # refuse the user's retry although the service is back.
                await partner.channel.close(None)
                partner.channel = None
            raise Unavailable(
                f"the {partner.name} service did not answer {rpc}"
                f" ({error.code().name}: {error.details()}); nothing is reported done, retry"
            ) from None

    async def export(self, tenant_id: str) -> dict[str, Any]:
        """Each service's document, by service name."""
        documents = {}
        for partner in self.partners:
            reply = await self._call(partner, "ExportTenantData", tenant_id)
            documents[partner.name] = json.loads(reply.json_document or b"{}")
        return documents

    async def delete(self, tenant_id: str) -> dict[str, dict[str, int]]:
        """Rows removed, by service and kind. Strategy first: its bots stop before execution forgets
        the tenant, so no new signal reaches execution after it has been emptied."""
        removed = {}
        for partner in self.partners:
            reply = await self._call(partner, "DeleteTenantData", tenant_id)
            removed[partner.name] = dict(reply.deleted_rows)
        return removed

    async def close(self) -> None:
        for partner in self.partners:
            if partner.channel is not None:
                await partner.channel.close(None)
