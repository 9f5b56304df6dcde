"""Step-up for sensitive changes (loosening risk limits, releasing a kill switch): a current TOTP code
when the caller has TOTP enrolled. TOTP secrets live with the tenants service, so the check is its
service-only CheckStepUp, which also uses each code up (a code works once, platform-wide)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from tradebot.tenants.v1 import tenants_service_pb2, tenants_service_pb2_grpc

from services.common.context import Principal, Role
from services.common.errors import PermissionDenied, Unavailable
from services.common.service_identity import ServiceCredentials, platform_channel

Check = Callable[[Principal, str], Awaitable[None]]


class StepUp:
    def __init__(self, check: Check | None = None) -> None:
        # None: no tenants service is configured (the service running alone); nothing to check with.
        self._check = check

    async def require(self, principal: Principal, code: str) -> None:
        if self._check is not None and principal.role is not Role.SERVICE:
            await self._check(principal, code)


def tenants_step_up(tenants_addr: str, credentials: ServiceCredentials) -> StepUp:
    channel: grpc.aio.Channel | None = None

    async def check(principal: Principal, code: str) -> None:
        nonlocal channel
        if channel is None:
            channel = platform_channel(tenants_addr)
        stub = tenants_service_pb2_grpc.TenantsServiceStub(channel)
        request = tenants_service_pb2.CheckStepUpRequest(
            tenant_id=principal.tenant_id, user_id=principal.user_id, totp_code=code
        )
        try:
            await stub.CheckStepUp(request, metadata=await credentials.metadata(), timeout=5)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(error.details() or "this change needs a current TOTP code") from None
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise PermissionDenied("your account is not known to the tenants service") from None
            raise Unavailable("cannot check the step-up code with the tenants service; retry") from None

    return StepUp(check)
