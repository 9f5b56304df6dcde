"""The gRPC server every service runs: health, reflection, and one interceptor for the cross-cutting
concerns of each call (trace context, authentication, logging, RPC metrics, error mapping).

Keeping these in one interceptor, in this order, means every RPC of every service is traced, logged,
counted and mapped to a status code the same way, and service code only raises domain errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The asyncio HealthServicer (also exported as grpc_health.v1.health.aio, which the stubs do not know).
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.common import telemetry
from services.common.auth import TokenVerifier
from services.common.context import bind_principal
from services.common.errors import InvalidArgument, TradebotError, Unauthenticated

log = logging.getLogger("tradebot.grpc")

Parser = Callable[[bytes], Any] | None

# Methods of the standard services are never authenticated or logged per call.
_INFRA_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class RuntimeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier | None, public_methods: Iterable[str]) -> None:
        self.verifier = verifier
        self.public_methods = frozenset(public_methods)
        meter = telemetry.meter("tradebot.grpc")
        self.duration = meter.create_histogram(
            "rpc_server_duration_seconds", unit="s", description="RPC latency by method and status code"
        )
        self.tracer = telemetry.tracer("tradebot.grpc")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_INFRA_PREFIXES):
            return handler
        # Requests arrive as bytes and are parsed inside the call scope: gRPC would otherwise parse
        # them before any interceptor runs and report a malformed request as UNKNOWN.
        parse = handler.request_deserializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary, parse),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, parse),
                response_serializer=handler.response_serializer,
            )
        # Client-streaming RPCs are not part of our contracts; serve them unwrapped if one appears.
        return handler

    async def _authenticate(self, method: str, context: grpc.aio.ServicerContext) -> None:
        if method in self.public_methods:
            bind_principal(None)
            return
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        if not header.lower().startswith("bearer "):
            raise Unauthenticated("missing access token: send 'authorization: Bearer <token>'")
        if self.verifier is None:
            raise Unauthenticated("this service cannot verify tokens: TENANTS_ADDR is not configured")
        bind_principal(await self.verifier.verify(header[7:].strip()))

    async def _fail(self, method: str, context: grpc.aio.ServicerContext, error: Exception) -> None:
        if isinstance(error, NotImplementedError):
            # The generated base servicer's answer for an RPC whose service is not built yet.
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented yet")
        if isinstance(error, TradebotError):
            log.info("rpc refused", extra={"rpc": method, "code": error.code.name, "reason": str(error)})
            await context.abort(error.code, str(error))
        incident = uuid.uuid4().hex[:12]
        log.exception("rpc failed", extra={"rpc": method, "incident": incident})
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (incident {incident})")

    def _record(self, method: str, started: float, code: str) -> None:
        elapsed = time.perf_counter() - started
        self.duration.record(elapsed, {"rpc_method": method, "rpc_code": code})
        log.info("rpc", extra={"rpc": method, "code": code, "duration_ms": round(elapsed * 1000, 2)})

    @contextlib.asynccontextmanager
    async def _call_scope(self, method: str, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Everything around one call: trace context, span, auth, error mapping, metrics and the log
        line (written inside the span, so it carries the caller's trace id)."""
        started = time.perf_counter()
        token = otel_context.attach(telemetry.extract(context.invocation_metadata()))
        code = "OK"
        try:
            with self.tracer.start_as_current_span(method, kind=trace.SpanKind.SERVER):
                try:
                    await self._authenticate(method, context)
                    yield
                except asyncio.CancelledError:
                    code = "CANCELLED"  # the client went away or the server is stopping
                    raise
                except Exception as error:
                    code = _code_of(error, context)
                    if isinstance(error, grpc.aio.AbortError):
                        raise  # context.abort() unwinding the handler: pass it through untouched
                    await self._fail(method, context, error)
                finally:
                    self._record(method, started, code)
        finally:
            otel_context.detach(token)

    def _wrap_unary(self, method: str, behavior: Callable[..., Any], parse: Parser) -> Callable[..., Any]:
        async def wrapped(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            async with self._call_scope(method, context):
                result = behavior(_parse(parse, raw), context)
                # Generated base servicers are plain functions; our servicers are coroutines.
                return await result if inspect.isawaitable(result) else result

        return wrapped

    def _wrap_stream(self, method: str, behavior: Callable[..., Any], parse: Parser) -> Callable[..., Any]:
        async def wrapped(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async with self._call_scope(method, context):
                async for item in behavior(_parse(parse, raw), context):
                    yield item

        return wrapped


def _parse(parse: Parser, raw: bytes) -> Any:
    if parse is None:
        return raw
    try:
        return parse(raw)
    except Exception:  # DecodeError, or worse for hostile input: always the caller's error
        raise InvalidArgument("the request is not a valid message of this RPC's request type") from None


def _code_of(error: Exception, context: grpc.aio.ServicerContext) -> str:
    if isinstance(error, TradebotError):
        return error.code.name
    if isinstance(error, NotImplementedError):
        return "UNIMPLEMENTED"
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "ABORTED"
    return "INTERNAL"


def build_server(
    verifier: TokenVerifier | None, public_methods: Iterable[str]
) -> tuple[grpc.aio.Server, HealthServicer]:
    # gRPC binds with SO_REUSEPORT by default: a second service given the same port would start too and
    # the kernel would split connections between the two (a caller of one reaching the other). Bind
    # exclusively, so a taken port stops the service instead.
    server = grpc.aio.server(
        interceptors=[RuntimeInterceptor(verifier, public_methods)], options=[("grpc.so_reuseport", 0)]
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    return server, health


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    names = [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
