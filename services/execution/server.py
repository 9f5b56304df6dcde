"""Execution service wiring: risk checks, orders, fills, positions and PnL; the only service that trades.

Every RPC answers UNIMPLEMENTED (the generated base servicer) until the execution work fills it in.
"""

from __future__ import annotations

from tradebot.execution.v1 import execution_service_pb2_grpc as rpc

from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    pass


async def setup(runtime: ServiceRuntime) -> None:
    runtime.add_servicer(rpc.add_ExecutionServiceServicer_to_server, rpc.ExecutionServiceServicer())
