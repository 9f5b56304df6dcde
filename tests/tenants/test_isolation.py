"""Tenant isolation and roles, RPC by RPC: a user of tenant A aimed at tenant B's resources gets
PERMISSION_DENIED or NOT_FOUND and never B's data; each role gets exactly what the contract allows;
and PostgreSQL itself hides B's rows from a transaction set to A."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from tradebot.common.v1 import common_pb2
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.tenants.conftest import Member, Stack

OWNER, TRADER, VIEWER, ADMIN, SERVICE = "owner", "trader", "viewer", "admin", "service"
ANY = {OWNER, TRADER, VIEWER, ADMIN}
# Roles each RPC admits (from the comments of tenants_service.proto); everyone else: PERMISSION_DENIED.
ALLOWED: dict[str, set[str]] = {
    "Logout": ANY,
    "GetMe": ANY,
    "CreateInvite": {OWNER, ADMIN},
    "ListUsers": {OWNER, ADMIN},
    "SetUserRole": {OWNER, ADMIN},
    "EnrollTotp": ANY,
    "ConfirmTotp": ANY,
    "CreateApiToken": {OWNER, TRADER},
    "ListApiTokens": {OWNER, TRADER, VIEWER},
    "RevokeApiToken": {OWNER, TRADER},
    "PutExchangeCredentials": {OWNER},
    "GetExchangeCredentialsStatus": {OWNER, TRADER, VIEWER, SERVICE},  # a service names the tenant
    "RotateExchangeCredentials": {OWNER},
    "DeleteExchangeCredentials": {OWNER},
    "GetSettings": {OWNER, TRADER, VIEWER},
    "UpdateSettings": {OWNER},
    "ListTemplates": {OWNER, TRADER, VIEWER},
    "CreateTemplate": {OWNER, TRADER},
    "DeleteTemplate": {OWNER, TRADER},
    "ListAuditEvents": {OWNER, ADMIN},
    "VerifyAuditChain": {OWNER, ADMIN},
    "RecordAuditEvent": {SERVICE},
    "CheckStepUp": {SERVICE},
    "ExportTenantData": {OWNER},
    "DeleteTenant": {OWNER, ADMIN},
}
PUBLIC = {"SignUp", "Login", "RefreshToken", "GetJwks"}


def _requests(b: dict[str, Any]) -> dict[str, Message]:
    """For each RPC, a request aimed at tenant B (its ids, its names) wherever a field can name one."""
    template = common_pb2.ParameterTemplate(name="moderate", strategy_id="ppp_vishva")
    return {
        "Logout": pb.LogoutRequest(refresh_token=b["refresh_token"]),
        "GetMe": pb.GetMeRequest(),
        "CreateInvite": pb.CreateInviteRequest(email="x-new@example.com", role=pb.ROLE_VIEWER),
        "ListUsers": pb.ListUsersRequest(),
        "SetUserRole": pb.SetUserRoleRequest(user_id=b["user_id"], role=pb.ROLE_VIEWER),
        "EnrollTotp": pb.EnrollTotpRequest(),
        "ConfirmTotp": pb.ConfirmTotpRequest(code="123456"),
        "CreateApiToken": pb.CreateApiTokenRequest(name="probe", role=pb.ROLE_VIEWER),
        "ListApiTokens": pb.ListApiTokensRequest(include_inactive=True),
        "RevokeApiToken": pb.RevokeApiTokenRequest(api_token_id=b["api_token_id"]),
        "PutExchangeCredentials": pb.PutExchangeCredentialsRequest(
            api_key="abc", api_secret="s", environment=3
        ),
        "GetExchangeCredentialsStatus": pb.GetExchangeCredentialsStatusRequest(),
        "RotateExchangeCredentials": pb.RotateExchangeCredentialsRequest(api_key="abc", api_secret="s"),
        "DeleteExchangeCredentials": pb.DeleteExchangeCredentialsRequest(),
        "GetSettings": pb.GetSettingsRequest(),
        "UpdateSettings": pb.UpdateSettingsRequest(update_mask={"paths": ["require_totp"]}),
        "ListTemplates": pb.ListTemplatesRequest(),
        "CreateTemplate": pb.CreateTemplateRequest(template=template),
        "DeleteTemplate": pb.DeleteTemplateRequest(strategy_id="ppp_vishva", name=b["template"]),
        "ListAuditEvents": pb.ListAuditEventsRequest(tenant_id=b["tenant_id"]),
        "VerifyAuditChain": pb.VerifyAuditChainRequest(tenant_id=b["tenant_id"]),
        "RecordAuditEvent": pb.RecordAuditEventRequest(
            tenant_id=b["tenant_id"], actor_kind=4, action="bot.start"
        ),
        "CheckStepUp": pb.CheckStepUpRequest(tenant_id=b["tenant_id"], user_id=b["user_id"]),
        "ExportTenantData": pb.ExportTenantDataRequest(),
        "DeleteTenant": pb.DeleteTenantRequest(
            tenant_id=b["tenant_id"], confirm_tenant_name=b["tenant_name"]
        ),
    }


async def _call(stack: Stack, method: str, request: Message, meta: Any) -> tuple[grpc.StatusCode, bytes]:
    rpc: Callable[..., Any] = getattr(stack.stub, method)
    try:
        reply = await rpc(request, metadata=meta)
    except grpc.aio.AioRpcError as error:
        return error.code(), (error.details() or "").encode()
    return grpc.StatusCode.OK, reply.SerializeToString()


@pytest.fixture(scope="module")
async def world(stack: Stack) -> dict[str, Any]:
    a_owner = await stack.new_tenant("iso-a")
    members = {
        OWNER: a_owner,
        TRADER: await stack.add_member(a_owner, pb.ROLE_TRADER, "iso-trader"),
        VIEWER: await stack.add_member(a_owner, pb.ROLE_VIEWER, "iso-viewer"),
    }
    b_owner = await stack.new_tenant("iso-b")
    b_trader = await stack.add_member(b_owner, pb.ROLE_TRADER, "iso-b-trader")
    token = await stack.stub.CreateApiToken(
        pb.CreateApiTokenRequest(name="b-token", role=pb.ROLE_VIEWER), metadata=b_owner.meta
    )
    me = await stack.stub.GetMe(pb.GetMeRequest(), metadata=b_owner.meta)
    b = {
        "tenant_id": b_owner.tenant_id,
        "tenant_name": me.tenant.name,
        "user_id": b_trader.user.id,
        "refresh_token": b_trader.tokens.refresh_token,
        "api_token_id": token.api_token.id,
        "template": "moderate",
        "secrets": [
            b_owner.email,
            b_trader.email,
            b_trader.user.id,
            b_owner.user.id,
            token.api_token.id,
            me.tenant.name,
        ],
    }
    return {"members": members, "b": b, "b_owner": b_owner}


@pytest.mark.parametrize("method", sorted(ALLOWED))
@pytest.mark.parametrize("role", [OWNER, TRADER, VIEWER])
async def test_tenant_a_cannot_reach_tenant_b(
    stack: Stack, world: dict[str, Any], method: str, role: str
) -> None:
    member: Member = world["members"][role]
    b = world["b"]
    code, body = await _call(stack, method, _requests(b)[method], member.meta)
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNIMPLEMENTED)
    for secret in b["secrets"]:
        assert secret.encode() not in body, f"{method} as {role} of A returned B's {secret!r} ({code.name})"
    if role not in ALLOWED[method]:
        assert code == grpc.StatusCode.PERMISSION_DENIED, f"{method} as {role}: {code.name}"
    elif method in {"SetUserRole", "RevokeApiToken"}:
        assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED), (
            f"{method}: {code.name}"
        )
    elif method in {"ListAuditEvents", "VerifyAuditChain", "DeleteTenant", "RecordAuditEvent", "CheckStepUp"}:
        assert code == grpc.StatusCode.PERMISSION_DENIED, f"{method} with B's tenant_id: {code.name}"


async def test_b_is_intact_after_the_probes(stack: Stack, world: dict[str, Any]) -> None:
    b_owner: Member = world["b_owner"]
    users = await stack.stub.ListUsers(pb.ListUsersRequest(), metadata=b_owner.meta)
    assert {u.role for u in users.users} == {pb.ROLE_OWNER, pb.ROLE_TRADER}
    templates = await stack.stub.ListTemplates(pb.ListTemplatesRequest(), metadata=b_owner.meta)
    assert "moderate" in {t.name for t in templates.templates}
    tokens = await stack.stub.ListApiTokens(pb.ListApiTokensRequest(), metadata=b_owner.meta)
    assert [t.name for t in tokens.api_tokens] == ["b-token"]


async def test_each_role_gets_exactly_its_rpcs(stack: Stack, world: dict[str, Any]) -> None:
    """Own-tenant requests: roles outside the contract's list are PERMISSION_DENIED, the others are not."""
    assert stack.admin is not None
    callers = {**world["members"], ADMIN: stack.admin}
    own = {
        "tenant_id": "",
        "tenant_name": "",
        "user_id": "00000000-0000-0000-0000-000000000000",
        "refresh_token": "",
        "api_token_id": "00000000-0000-0000-0000-000000000000",
        "template": "none",
    }
    requests = _requests(own)
    requests["DeleteTenant"] = pb.DeleteTenantRequest(confirm_tenant_name="not the name")
    for method, request in requests.items():
        for role, member in callers.items():
            code, _ = await _call(stack, method, request, member.meta)
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
            denied = code == grpc.StatusCode.PERMISSION_DENIED
            if (method, role) == ("DeleteTenant", ADMIN):
                assert denied, "the platform's own organisation is not deletable through the API"
                continue
            assert denied == (role not in ALLOWED[method]), f"{method} as {role}: {code.name}"
        code, _ = await _call(stack, method, request, stack.service_meta())
        assert (code == grpc.StatusCode.PERMISSION_DENIED) == (SERVICE not in ALLOWED[method]), method


def test_every_rpc_of_the_contract_is_covered() -> None:
    names = {m.name for m in pb.DESCRIPTOR.services_by_name["TenantsService"].methods}
    assert names == set(ALLOWED) | PUBLIC


async def test_rls_hides_tenant_b_from_a_raw_query_under_tenant_a(
    stack: Stack, world: dict[str, Any]
) -> None:
    a, b = world["members"][OWNER].tenant_id, world["b"]["tenant_id"]
    tables = [
        "tenant",
        "app_user",
        "invite",
        "refresh_token",
        "api_token",
        "tenant_settings",
        "saved_template",
        "exchange_credentials",
        "audit_event",
    ]
    with stack.deps.db.tenant(a) as session:
        for table in tables:
            column = "id" if table == "tenant" else "tenant_id"
            # No WHERE clause: the policy alone keeps B out.
            owners = set(session.execute(text(f"select {column} from {table}")).scalars())
            assert b not in owners and owners <= {a}, table
        with pytest.raises(Exception, match="row-level security"):
            session.execute(
                text(
                    "insert into saved_template (tenant_id, strategy_id, name, create_time) "
                    "values (:b, 'ppp_vishva', 'planted', now())"
                ),
                {"b": b},
            )
    with stack.deps.db.tenant(a) as session:
        denied = session.execute(
            text(
                "select has_table_privilege('audit_event', 'UPDATE'), "
                "has_table_privilege('audit_event', 'DELETE')"
            )
        ).one()
        assert tuple(denied) == (False, False)
