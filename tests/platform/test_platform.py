"""The platform as `make run` starts it: every service reachable, described by reflection, healthy,
and honest about what it does not do yet; tokens verified by every service through the tenants JWKS."""

from __future__ import annotations

import contextlib
import importlib
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor_pb2, symbol_database
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tradebot.execution.v1 import execution_service_pb2
from tradebot.strategy.v1 import strategy_service_pb2
from tradebot.tenants.v1 import tenants_service_pb2

from services.devstack.platform import GRPC_SERVICES
from tests.helpers.infra import Platform
from tests.helpers.tokens import access_token

SERVICE_NAMES = {
    "tenants": "tradebot.tenants.v1.TenantsService",
    "marketdata": "tradebot.marketdata.v1.MarketDataService",
    "strategy": "tradebot.strategy.v1.StrategyService",
    "execution": "tradebot.execution.v1.ExecutionService",
}
# RPCs already built: to an empty request they answer a defined status (OK or a named refusal).
# Every other RPC must answer UNIMPLEMENTED until its issue fills it in.
IMPLEMENTED = {
    *(
        f"tradebot.tenants.v1.TenantsService/{method.name}"
        for method in tenants_service_pb2.DESCRIPTOR.services_by_name["TenantsService"].methods
    ),
    *(
        f"tradebot.marketdata.v1.MarketDataService/{name}"
        for name in (
            "ListInstruments",
            "GetCandles",
            "StreamCandles",
            "GetTicker",
            "EnsureSubscriptions",
            "ReleaseSubscriptions",
        )
    ),
    *(
        f"tradebot.execution.v1.ExecutionService/{method.name}"
        for method in execution_service_pb2.DESCRIPTOR.services_by_name["ExecutionService"].methods
    ),
    *(
        f"tradebot.strategy.v1.StrategyService/{method.name}"
        for method in strategy_service_pb2.DESCRIPTOR.services_by_name["StrategyService"].methods
    ),
}
UNDEFINED = {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
PUBLIC = {
    f"tradebot.tenants.v1.TenantsService/{name}" for name in ("SignUp", "Login", "RefreshToken", "GetJwks")
}


def reflected_services(address: str) -> set[str]:
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    return {service.name for service in reply.list_services_response.service}


def reflected_methods(address: str, service: str) -> list[descriptor_pb2.MethodDescriptorProto]:
    """The service's methods as the server itself describes them (file descriptors over reflection)."""
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
        (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    package, _, name = service.rpartition(".")
    for raw in reply.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for candidate in proto.service:
            if proto.package == package and candidate.name == name:
                return list(candidate.method)
    raise AssertionError(f"{service} not described over reflection")


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_reflection_lists_the_service_and_health_reports_serving(platform: Platform, name: str) -> None:
    address = platform.address(name)
    services = reflected_services(address)
    assert {
        SERVICE_NAMES[name],
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAMES[name]):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="tradebot.nothing.v1.Nope"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_dashboard_answers_its_health_check(platform: Platform) -> None:
    address = platform.address("dashboard")
    with urllib.request.urlopen(f"http://{address}/_stcore/health", timeout=5) as response:
        assert response.status == 200
        assert response.read().decode().strip() == "ok"


def _call(
    address: str, service: str, method: descriptor_pb2.MethodDescriptorProto, token: str | None
) -> grpc.StatusCode:
    """Call any RPC with an empty request of its real type; return the status code."""
    request_type = symbol_database.Default().GetSymbol(method.input_type.lstrip("."))
    path = f"/{service}/{method.name}"
    metadata: tuple[tuple[str, str | bytes], ...] = (("authorization", f"Bearer {token}"),) if token else ()
    serialize, deserialize = request_type.SerializeToString, bytes
    with grpc.insecure_channel(address) as channel:
        try:
            if method.server_streaming:
                call = channel.unary_stream(
                    path, request_serializer=serialize, response_deserializer=deserialize
                )
                list(call(request_type(), metadata=metadata, timeout=5))
            else:
                unary = channel.unary_unary(
                    path, request_serializer=serialize, response_deserializer=deserialize
                )
                unary(request_type(), metadata=metadata, timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def _load_generated(name: str) -> None:
    importlib.import_module(f"tradebot.{name}.v1.{name}_service_pb2")


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_unbuilt_rpcs_answer_unimplemented_to_an_authenticated_caller(platform: Platform, name: str) -> None:
    _load_generated(name)
    token = access_token(platform.infra.vault, tenant_id="tenant-a", role="owner")
    service = SERVICE_NAMES[name]
    methods = reflected_methods(platform.address(name), service)
    assert methods, "a service with no RPCs"
    codes = {m.name: _call(platform.address(name), service, m, token) for m in methods}
    for method_name, code in codes.items():
        if f"{service}/{method_name}" in IMPLEMENTED:
            assert code not in UNDEFINED, f"{service}/{method_name} answered {code.name}"
        else:
            assert code == grpc.StatusCode.UNIMPLEMENTED, f"{service}/{method_name} answered {code.name}"


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_calls_without_a_valid_token_are_unauthenticated(platform: Platform, name: str) -> None:
    _load_generated(name)
    service = SERVICE_NAMES[name]
    address = platform.address(name)
    valid = access_token(platform.infra.vault, tenant_id="tenant-a", role="viewer")
    header, payload, _signature = valid.split(".")
    forged = f"{header}.{payload}.{'A' * 86}"
    unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + "."
    expired = access_token(platform.infra.vault, tenant_id="tenant-a", role="viewer", ttl=-60)
    for method in reflected_methods(address, service):
        if f"{service}/{method.name}" in PUBLIC:
            continue
        for token in (None, "not-a-jwt", forged, unsigned, expired):
            code = _call(address, service, method, token)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (
                f"{method.name} with {token!r:.20} gave {code.name}"
            )


def test_service_tokens_are_verified_and_cannot_impersonate(platform: Platform) -> None:
    """A service key vouches only for its own service; forging another identity is refused."""
    from services.common.auth import TokenVerifier, require_service
    from services.common.context import Role
    from services.common.errors import PermissionDenied, Unauthenticated
    from services.common.jwks import tenants_jwks_fetcher
    from tests.helpers.tokens import service_token

    verifier = TokenVerifier(tenants_jwks_fetcher(platform.address("tenants")))

    async def check() -> None:
        principal = await verifier.verify(service_token(platform.infra.vault, "strategy"))
        assert (principal.role, principal.user_id) == (Role.SERVICE, "service:strategy")
        assert require_service(principal) is principal
        with pytest.raises(Unauthenticated, match="cannot vouch"):
            await verifier.verify(service_token(platform.infra.vault, "strategy", claimed="execution"))
        user = await verifier.verify(access_token(platform.infra.vault, tenant_id="t", role="owner"))
        with pytest.raises(PermissionDenied):
            require_service(user)

    import asyncio

    asyncio.run(check())


def test_logs_are_json_with_trace_and_tenant_and_metrics_are_exported(platform: Platform) -> None:
    """A traced, authenticated call shows up in the service's JSON log under the caller's trace id and
    tenant, and in its Prometheus metrics."""
    import json
    import uuid

    from tradebot.strategy.v1 import strategy_service_pb2 as pb

    service = platform.services["strategy"]
    trace_id = uuid.uuid4().hex
    token = access_token(platform.infra.vault, tenant_id="tenant-logs", role="viewer")
    metadata = (("authorization", f"Bearer {token}"), ("traceparent", f"00-{trace_id}-{'1' * 16}-01"))
    with grpc.insecure_channel(service.address) as channel:
        call = channel.unary_unary(
            "/tradebot.strategy.v1.StrategyService/ListBots",
            request_serializer=pb.ListBotsRequest.SerializeToString,
            response_deserializer=bytes,
        )
        with contextlib.suppress(grpc.RpcError):  # the answer does not matter here, only its traces
            call(pb.ListBotsRequest(), metadata=metadata, timeout=5)

    import time

    deadline = time.monotonic() + 10  # the service writes its line as the call ends; allow for a busy machine
    while True:
        lines = [json.loads(line) for line in (service.logs / "strategy.log").read_text().splitlines()]
        ours = [line for line in lines if line.get("trace_id") == trace_id]
        if ours or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert all({"timestamp", "level", "service", "message"} <= line.keys() for line in lines)
    assert {line["service"] for line in lines} == {"strategy"}
    assert ours, "no log line carries the caller's trace id"
    assert ours[-1]["tenant_id"] == "tenant-logs"
    assert ours[-1]["rpc"] == "/tradebot.strategy.v1.StrategyService/ListBots"

    metrics_port = service.ready_info()["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        exposition = response.read().decode()
    assert "rpc_server_duration_seconds_count{" in exposition
    assert 'rpc_method="/tradebot.strategy.v1.StrategyService/ListBots"' in exposition


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_undecodable_request_bytes_are_invalid_argument_not_unknown(platform: Platform, name: str) -> None:
    token = access_token(platform.infra.vault, tenant_id="tenant-a", role="owner")
    service = SERVICE_NAMES[name]
    method = next(m for m in reflected_methods(platform.address(name), service) if not m.server_streaming)
    with grpc.insecure_channel(platform.address(name)) as channel:
        call = channel.unary_unary(
            f"/{service}/{method.name}", request_serializer=None, response_deserializer=None
        )
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\xff\xff\xff\xff", metadata=(("authorization", f"Bearer {token}"),), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in str(refused.value.details())
