"""The StrategyService servicer, assembled from its areas (rpc_bots, rpc_results, data_rights)."""

from __future__ import annotations

from tradebot.strategy.v1 import strategy_service_pb2_grpc as rpc

from services.strategy.backtests import Backtests
from services.strategy.bots import Bots
from services.strategy.data_rights import DataRightsRpcs
from services.strategy.rpc_bots import BotRpcs
from services.strategy.rpc_results import ResultRpcs
from services.strategy.signals import SignalStore


class StrategyServicer(BotRpcs, ResultRpcs, DataRightsRpcs, rpc.StrategyServiceServicer):
    def __init__(self, bots: Bots, signal_store: SignalStore, backtests: Backtests) -> None:
        self.bots = bots
        self.signal_store = signal_store
        self.backtests = backtests
