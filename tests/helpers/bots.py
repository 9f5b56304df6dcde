"""PPP Vishva bots created through strategy's public API, as a client creates them."""

from __future__ import annotations

import uuid
from typing import Any

from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import events_pb2 as se
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.strategy.v1 import strategy_service_pb2_grpc as sp_rpc

from tests.helpers.clients import Caller


def ppp_vishva_request(**fields: Any) -> sp.CreateBotRequest:
    """A PPP Vishva bot on SOLUSDT hourly linear candles, on paper with 1000 USDT from the aggressive
    template unless `fields` say otherwise (template="" leaves the choice to strategy's default)."""
    values: dict[str, Any] = {
        "name": f"bot-{uuid.uuid4().hex[:6]}",
        "strategy_id": "ppp_vishva",
        "template": "aggressive",
        "category": common.CATEGORY_LINEAR,
        "symbol": "SOLUSDT",
        "interval": common.INTERVAL_1_HOUR,
        "mode": common.TRADING_MODE_PAPER,
        "capital_allocation": "1000",
        **fields,
    }
    return sp.CreateBotRequest(**values)


def create_bot(strategy: sp_rpc.StrategyServiceStub, owner: Caller, **fields: Any) -> se.Bot:
    return strategy.CreateBot(ppp_vishva_request(**fields), metadata=owner.meta, timeout=30).bot
