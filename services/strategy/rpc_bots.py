"""Strategies and bots over gRPC. Reading needs any role of the tenant; changing bots TRADER or OWNER."""

from __future__ import annotations

import asyncio
from typing import Any

from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.common import paging
from services.common.auth import require_role
from services.common.context import Principal, Role, current_principal
from services.strategy import convert
from services.strategy.bots import STRATEGY_VERSION, Bots, to_proto
from services.strategy.registry import STRATEGIES
from services.strategy.strategies.base import Param, Strategy

_TYPES = {int: pb.PARAMETER_TYPE_INT, float: pb.PARAMETER_TYPE_FLOAT, bool: pb.PARAMETER_TYPE_BOOL}


def reader() -> Principal:
    return require_role(current_principal(), Role.VIEWER)


def controller() -> Principal:
    return require_role(current_principal(), Role.TRADER)


def _bound(param: Param, value: float | None) -> common_pb2.ParameterValue | None:
    if value is None:
        return None
    return convert.parameter_value(param.type(value))


def strategy_proto(strategy: Strategy) -> pb.Strategy:
    out = pb.Strategy(
        id=strategy.name,
        name=strategy.title,
        version=STRATEGY_VERSION,
        description=strategy.description,
        default_template=strategy.default_template,
        categories=[common_pb2.CATEGORY_SPOT, common_pb2.CATEGORY_LINEAR],
        warmup_bars=strategy.warmup_bars(strategy.resolve()),
    )
    for p in strategy.params:
        spec = out.parameters.add(
            name=p.name,
            type=_TYPES[p.type],
            description=p.description,
            unit=p.unit,
            default_value=convert.parameter_value(p.default),
        )
        for field, value in (("min", p.minimum), ("max", p.maximum)):
            bound = _bound(p, value) if p.type is not bool else None
            if bound is not None:
                getattr(spec, field).CopyFrom(bound)
    for name, values in strategy.templates.items():
        template = out.templates.add(name=name, strategy_id=strategy.name, built_in=True)
        for key, value in values.items():
            template.values[key].CopyFrom(convert.parameter_value(value))
    return out


class BotRpcs:
    bots: Bots

    async def ListStrategies(
        self, request: pb.ListStrategiesRequest, context: Any
    ) -> pb.ListStrategiesResponse:
        reader()
        return pb.ListStrategiesResponse(
            strategies=[strategy_proto(STRATEGIES[k]) for k in sorted(STRATEGIES)]
        )

    async def CreateBot(self, request: pb.CreateBotRequest, context: Any) -> pb.CreateBotResponse:
        return pb.CreateBotResponse(bot=to_proto(await self.bots.create(controller(), request)))

    async def UpdateBot(self, request: pb.UpdateBotRequest, context: Any) -> pb.UpdateBotResponse:
        return pb.UpdateBotResponse(bot=to_proto(await self.bots.update(controller(), request)))

    async def GetBot(self, request: pb.GetBotRequest, context: Any) -> pb.GetBotResponse:
        who = reader()
        return pb.GetBotResponse(
            bot=to_proto(await asyncio.to_thread(self.bots.store.get, who.tenant_id, request.bot_id))
        )

    async def ListBots(self, request: pb.ListBotsRequest, context: Any) -> pb.ListBotsResponse:
        who = reader()
        size = paging.page_size(request.page_size, default=50, maximum=200)
        rows = await asyncio.to_thread(
            self.bots.store.page,
            who.tenant_id,
            status=convert.STATUSES.get(request.status, ""),
            mode=convert.MODES.get(request.mode, ""),
            symbol=request.symbol,
            after=paging.page_position(request) or "",
            size=size + 1,
        )
        token = paging.next_page_token(request, rows[size - 1].name) if len(rows) > size else ""
        return pb.ListBotsResponse(bots=[to_proto(r) for r in rows[:size]], next_page_token=token)

    async def StartBot(self, request: pb.StartBotRequest, context: Any) -> pb.StartBotResponse:
        return pb.StartBotResponse(bot=to_proto(await self.bots.start(controller(), request.bot_id)))

    async def PauseBot(self, request: pb.PauseBotRequest, context: Any) -> pb.PauseBotResponse:
        return pb.PauseBotResponse(
            bot=to_proto(await self.bots.pause(controller(), request.bot_id, request.reason))
        )

    async def StopBot(self, request: pb.StopBotRequest, context: Any) -> pb.StopBotResponse:
        return pb.StopBotResponse(
            bot=to_proto(
                await self.bots.stop(controller(), request.bot_id, request.reason, request.close_position)
            )
        )

    async def DeleteBot(self, request: pb.DeleteBotRequest, context: Any) -> pb.DeleteBotResponse:
        await self.bots.delete(controller(), request.bot_id)
        return pb.DeleteBotResponse()
