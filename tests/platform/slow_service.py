"""A service built on the shared runtime whose public RPC takes as long as asked (the subject of the
graceful-shutdown tests) and whose other RPC names the caller of a verified access token (the subject
of the readiness tests). Run as `python -m tests.platform.slow_service`."""

from __future__ import annotations

import asyncio

import grpc

from services.common.context import current_principal
from services.common.runtime import ServiceRuntime, run_service
from services.common.settings import ServiceSettings

METHOD = "/test.Slow/Sleep"
WHO_AM_I = "/test.Slow/WhoAmI"


async def sleep(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(float(request.decode()))
    return b"finished"


async def who_am_i(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    principal = current_principal()
    return principal.user_id.encode() if principal else b""


async def setup(runtime: ServiceRuntime) -> None:
    handler = grpc.method_handlers_generic_handler(
        "test.Slow",
        {
            "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
            "WhoAmI": grpc.unary_unary_rpc_method_handler(who_am_i),
        },
    )
    runtime.server.add_generic_rpc_handlers((handler,))


if __name__ == "__main__":
    run_service("slow", ServiceSettings, setup, public_methods={METHOD})
