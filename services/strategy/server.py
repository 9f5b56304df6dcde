"""Strategy service wiring: bots, their lifecycle, candle-driven evaluation and backtests.

Every RPC answers UNIMPLEMENTED (the generated base servicer) until the strategy service work fills
it in; the trading core it will serve lives beside this module.
"""

from __future__ import annotations

from tradebot.strategy.v1 import strategy_service_pb2_grpc as rpc

from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    pass


async def setup(runtime: ServiceRuntime) -> None:
    runtime.add_servicer(rpc.add_StrategyServiceServicer_to_server, rpc.StrategyServiceServicer())
