"""Random and malformed messages to every RPC: only defined status codes come back (never UNKNOWN or
INTERNAL), and the service stays healthy."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from tests.tenants.conftest import Stack

SERVICE = pb.DESCRIPTOR.services_by_name["TenantsService"]
METHODS = [m.name for m in SERVICE.methods]
UNDEFINED = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNIMPLEMENTED}


def _message_strategy(descriptor: object, depth: int = 0) -> st.SearchStrategy[dict[str, object]]:
    """Field values of the right wire type but arbitrary content (text with control characters and
    NULs, huge and negative numbers, random enum numbers)."""
    fields = {}
    for f in descriptor.fields:  # type: ignore[attr-defined]
        if f.type == f.TYPE_STRING:
            value: st.SearchStrategy[object] = st.text(max_size=80)
        elif f.type == f.TYPE_BYTES:
            value = st.binary(max_size=40)
        elif f.type == f.TYPE_BOOL:
            value = st.booleans()
        elif f.type == f.TYPE_ENUM:
            value = st.integers(-3, 12)
        elif f.type in (f.TYPE_INT32, f.TYPE_SINT32):
            value = st.integers(-(2**31), 2**31 - 1)
        elif f.type in (f.TYPE_INT64, f.TYPE_SINT64):
            value = st.integers(-(2**63), 2**63 - 1)
        elif f.type == f.TYPE_DOUBLE:
            value = st.floats(allow_nan=True)
        elif f.type == f.TYPE_MESSAGE and depth < 3:
            if f.message_type.GetOptions().map_entry:
                value = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3)
            else:
                value = _message_strategy(f.message_type, depth + 1)
        else:
            continue
        if f.is_repeated and not (f.type == f.TYPE_MESSAGE and f.message_type.GetOptions().map_entry):
            value = st.lists(value, max_size=3)
        fields[f.name] = value
    return st.fixed_dictionaries({}, optional=fields)


def _build(cls: type, values: dict[str, object]) -> object:
    message = cls()
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        try:
            if (
                field.type == field.TYPE_MESSAGE
                and isinstance(value, dict)
                and not field.message_type.GetOptions().map_entry
            ):
                getattr(message, name).CopyFrom(_build(type(getattr(message, name)), value))
            elif field.type == field.TYPE_MESSAGE and field.is_repeated and isinstance(value, list):
                for item in value:
                    getattr(message, name).add().CopyFrom(_build(type(getattr(message, name).add()), item))
            elif isinstance(value, dict):
                getattr(message, name).update(value)
            elif isinstance(value, list):
                getattr(message, name).extend(value)
            else:
                setattr(message, name, value)
        except (ValueError, TypeError):
            continue  # e.g. a Timestamp out of range: the client library refuses to build it
    return message


cases = st.sampled_from(METHODS).flatmap(
    lambda name: st.tuples(
        st.just(name),
        st.one_of(
            _message_strategy(pb.DESCRIPTOR.message_types_by_name[f"{name}Request"]), st.binary(max_size=60)
        ),
        st.sampled_from(["owner", "viewer", "service", "none"]),
    )
)


async def test_random_and_malformed_messages_get_defined_codes(stack: Stack) -> None:
    assert stack.admin is not None
    viewer = await stack.add_member(await stack.new_tenant("fuzz"), pb.ROLE_VIEWER, "fuzz-viewer")
    channel = grpc.insecure_channel(stack.address)
    metas = {"owner": stack.admin.meta, "viewer": viewer.meta, "service": stack.service_meta(), "none": ()}
    codes: dict[str, set[str]] = {}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cases)
    def check(case: tuple[str, object, str]) -> None:
        name, payload, who = case
        request_cls = getattr(pb, f"{name}Request")
        raw = payload if isinstance(payload, bytes) else _build(request_cls, payload).SerializeToString()  # type: ignore[arg-type,attr-defined]
        call = channel.unary_unary(
            f"/{SERVICE.full_name}/{name}", request_serializer=None, response_deserializer=None
        )
        try:
            call(raw, metadata=metas[who], timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            code = error.code()
        codes.setdefault(name, set()).add(code.name)
        assert code not in UNDEFINED, f"{name} as {who} with {payload!r:.200} -> {code.name}"

    try:
        # Hypothesis drives a blocking client from a thread while the server runs on this event loop.
        await asyncio.to_thread(check)
        async with grpc.aio.insecure_channel(stack.address) as probe:
            reply = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert len(codes) >= len(METHODS) - 3, f"too few RPCs exercised: {sorted(codes)}"
    finally:
        channel.close()
