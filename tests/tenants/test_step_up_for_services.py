"""CheckStepUp: how another service (execution) asks for the step-up code of a sensitive change."""

from __future__ import annotations

import time

import grpc
import pyotp
import pytest
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.tenants.conftest import Stack


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def test_step_up_is_checked_once_per_code_and_only_for_services(stack: Stack) -> None:
    owner = await stack.new_tenant("stepup")
    check = pb.CheckStepUpRequest(tenant_id=owner.tenant_id, user_id=owner.user.id)
    service = stack.service_meta("execution")

    # No TOTP enrolled: nothing to check.
    reply = await stack.stub.CheckStepUp(check, metadata=service)
    assert reply.totp_enrolled is False

    await stack.enable_totp(owner)
    for code in ("", "000000"):
        check.totp_code = code
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stack.stub.CheckStepUp(check, metadata=service)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "TOTP" in str(refused.value.details())
    check.totp_code = pyotp.TOTP(owner.totp_secret).at(time.time() + 30)
    assert (await stack.stub.CheckStepUp(check, metadata=service)).totp_enrolled is True
    assert (
        await _code(stack.stub.CheckStepUp(check, metadata=service)) == grpc.StatusCode.PERMISSION_DENIED
    ), "a code is used up by the check"

    # Users cannot ask (they would learn nothing, but the call is the platform's), nor can a
    # service ask about a user in another tenant.
    assert (
        await _code(stack.stub.CheckStepUp(check, metadata=owner.meta)) == grpc.StatusCode.PERMISSION_DENIED
    )
    other = await stack.new_tenant("other")
    foreign = pb.CheckStepUpRequest(tenant_id=other.tenant_id, user_id=owner.user.id)
    assert await _code(stack.stub.CheckStepUp(foreign, metadata=service)) == grpc.StatusCode.NOT_FOUND


async def test_execution_requires_step_up_through_tenants(stack: Stack) -> None:
    """Execution's step-up hook, pointed at the real tenants service with execution's own identity."""
    import hvac

    from services.common.context import Principal, Role
    from services.common.errors import PermissionDenied
    from services.common.service_identity import ServiceCredentials
    from services.common.signing import TransitSigner, service_key
    from services.execution.stepup import tenants_step_up

    signer = TransitSigner(
        hvac.Client(url=stack.infra.vault.addr, token=stack.infra.vault.root_token), service_key("execution")
    )
    stepup = tenants_step_up(stack.address, ServiceCredentials(signer, "execution"))
    owner = await stack.new_tenant("exec-stepup")
    principal = Principal(user_id=owner.user.id, tenant_id=owner.tenant_id, role=Role.OWNER)
    await stepup.require(principal, "")  # no TOTP enrolled: nothing asked
    await stack.enable_totp(owner)
    with pytest.raises(PermissionDenied, match="TOTP"):
        await stepup.require(principal, "")
    with pytest.raises(PermissionDenied, match="TOTP"):
        await stepup.require(principal, "000000")
    await stepup.require(principal, pyotp.TOTP(owner.totp_secret).at(time.time() + 30))
