"""`tradebot.execution.v1.ExecutionService`: the RPCs, split by area and composed here."""

from __future__ import annotations

from tradebot.execution.v1 import execution_service_pb2_grpc as rpc

from services.execution.data_rights import DataRightsRpc
from services.execution.rpc_account import AccountRpc
from services.execution.rpc_risk import RiskRpc
from services.execution.rpc_trading import TradingRpc


class ExecutionServicer(TradingRpc, AccountRpc, RiskRpc, DataRightsRpc, rpc.ExecutionServiceServicer):
    pass
