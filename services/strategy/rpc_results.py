"""Signals and backtests over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.common import paging
from services.strategy.backtests import Backtests
from services.strategy.rpc_bots import controller, reader
from services.strategy.signals import SignalStore


class ResultRpcs:
    signal_store: SignalStore
    backtests: Backtests

    async def ListSignals(self, request: pb.ListSignalsRequest, context: Any) -> pb.ListSignalsResponse:
        who = reader()
        size = paging.page_size(request.page_size, default=100, maximum=1000)
        window = request.time_range
        after = paging.page_position(request)
        found = await asyncio.to_thread(
            self.signal_store.page,
            who.tenant_id,
            bot_id=request.bot_id,
            action=request.action,
            start_ms=window.start.ToMilliseconds() if window.HasField("start") else None,
            end_ms=window.end.ToMilliseconds() if window.HasField("end") else None,
            after=tuple(after) if after else None,
            size=size + 1,
        )
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = paging.next_page_token(request, [last.candle_start.ToMilliseconds(), last.id])
        return pb.ListSignalsResponse(signals=found[:size], next_page_token=token)

    async def RunBacktest(
        self, request: pb.RunBacktestRequest, context: Any
    ) -> AsyncIterator[pb.RunBacktestResponse]:
        who = controller()
        async for message in self.backtests.run(who, request.config):
            yield message

    async def GetBacktest(self, request: pb.GetBacktestRequest, context: Any) -> pb.GetBacktestResponse:
        who = reader()
        backtest, report = await asyncio.to_thread(self.backtests.get, who.tenant_id, request.backtest_id)
        reply = pb.GetBacktestResponse(backtest=backtest)
        if report is not None:
            reply.report.CopyFrom(report)
        return reply

    async def ListBacktests(self, request: pb.ListBacktestsRequest, context: Any) -> pb.ListBacktestsResponse:
        who = reader()
        size = paging.page_size(request.page_size, default=50, maximum=200)
        after = paging.page_position(request)
        found = await asyncio.to_thread(
            self.backtests.page,
            who.tenant_id,
            strategy_id=request.strategy_id,
            symbol=request.symbol,
            status=request.status,
            after=tuple(after) if after else None,
            size=size + 1,
        )
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = paging.next_page_token(request, [last.create_time.ToJsonString(), last.id])
        return pb.ListBacktestsResponse(backtests=found[:size], next_page_token=token)
