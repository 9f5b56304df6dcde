"""Market data service wiring: Bybit's public side — live candles into NATS, history, instruments.

Every RPC answers UNIMPLEMENTED (the generated base servicer) until the market data work fills it in.
"""

from __future__ import annotations

from tradebot.marketdata.v1 import marketdata_service_pb2_grpc as rpc

from services.common.runtime import ServiceRuntime
from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    pass


async def setup(runtime: ServiceRuntime) -> None:
    runtime.add_servicer(rpc.add_MarketDataServiceServicer_to_server, rpc.MarketDataServiceServicer())
