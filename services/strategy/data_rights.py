"""Data rights for the tenants service: export and erase everything strategy holds about one tenant.

Service-only RPCs (`require_service`), called by tenants with its own service identity for a user who
has already passed its checks (OWNER, step-up). The export is built through the same converters as
the API, so it holds exactly what a user can read back; strategy stores no secret. Deletion stops the
tenant's bots first, so the engine emits nothing more for them, and is idempotent.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from sqlalchemy import delete, func
from sqlmodel import Session, col, select
from tradebot.strategy.v1 import events_pb2
from tradebot.strategy.v1 import strategy_service_pb2 as pb

from services.common.auth import require_service
from services.common.context import current_principal
from services.common.errors import InvalidArgument
from services.strategy.bots import Bots, to_proto
from services.strategy.models import BacktestRow, BotRow, PositionUpdateRow, SignalRow


def _tenant(tenant_id: str) -> str:
    require_service(current_principal())
    if not tenant_id or len(tenant_id) > 64:
        raise InvalidArgument("must name the tenant (1 to 64 characters)", field="tenant_id")
    return tenant_id


def _plain(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _backtest(row: BacktestRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_by_user_id": row.created_by,
        "strategy_id": row.strategy_id,
        "symbol": row.symbol,
        "status": pb.BacktestStatus.Name(row.status)
        if row.status in pb.BacktestStatus.values()
        else row.status,
        "error_message": row.error_message,
        "config": _plain(pb.BacktestConfig.FromString(row.config)),
        "metrics": _plain(pb.BacktestMetrics.FromString(row.metrics)) if row.metrics else None,
        "report": _plain(pb.BacktestReport.FromString(row.report)) if row.report else None,
        "create_time": row.create_time.isoformat(),
        "finish_time": row.finish_time.isoformat() if row.finish_time else None,
    }


def export(session: Session, tenant_id: str) -> dict[str, Any]:
    bots = list(session.exec(select(BotRow).where(BotRow.tenant_id == tenant_id).order_by(col(BotRow.id))))
    bot_ids = [bot.id for bot in bots]
    signals = session.exec(
        select(SignalRow).where(SignalRow.tenant_id == tenant_id).order_by(col(SignalRow.candle_start_ms))
    )
    updates = session.exec(
        select(PositionUpdateRow)
        .where(col(PositionUpdateRow.bot_id).in_(bot_ids))
        .order_by(col(PositionUpdateRow.after_candle_ms))
    )
    backtests = session.exec(
        select(BacktestRow).where(BacktestRow.tenant_id == tenant_id).order_by(col(BacktestRow.create_time))
    )
    return {
        "bots": [_plain(to_proto(bot)) for bot in bots],
        "signals": [_plain(events_pb2.Signal.FromString(row.payload)) for row in signals],
        "position_updates": [
            {
                "bot_id": row.bot_id,
                "kind": row.kind,
                "price": str(row.price) if row.price is not None else None,
                "after_candle_ms": row.after_candle_ms,
            }
            for row in updates
        ],
        "backtests": [_backtest(row) for row in backtests],
    }


def erase(session: Session, tenant_id: str) -> dict[str, int]:
    """Delete every row of the tenant in one transaction; counts by kind."""
    bot_ids = select(BotRow.id).where(BotRow.tenant_id == tenant_id)
    counts = {
        "position_updates": session.exec(
            select(func.count())
            .select_from(PositionUpdateRow)
            .where(col(PositionUpdateRow.bot_id).in_(bot_ids))
        ).one(),
    }
    session.execute(delete(PositionUpdateRow).where(col(PositionUpdateRow.bot_id).in_(bot_ids)))
    for name, model in (("signals", SignalRow), ("backtests", BacktestRow), ("bots", BotRow)):
        result = session.execute(delete(model).where(col(model.tenant_id) == tenant_id))
        counts[name] = result.rowcount or 0  # type: ignore[attr-defined]
    return {name: count for name, count in counts.items() if count}


class DataRightsRpcs:
    """Mixed into StrategyServicer; uses its `bots` (store and the engine's refresh)."""

    bots: Bots

    def _in_session(self, work: Any) -> Any:
        with Session(self.bots.store.engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    async def ExportTenantData(
        self, request: pb.ExportTenantDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExportTenantDataResponse:
        tenant_id = _tenant(request.tenant_id)
        document = await asyncio.to_thread(self._in_session, lambda s: export(s, tenant_id))
        body = json.dumps(document, sort_keys=True, default=str).encode()
        return pb.ExportTenantDataResponse(json_document=body)

    async def DeleteTenantData(
        self, request: pb.DeleteTenantDataRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTenantDataResponse:
        tenant_id = _tenant(request.tenant_id)
        counts = await asyncio.to_thread(self._in_session, lambda s: erase(s, tenant_id))
        # The engine drops bots no longer in the database; a signal it was journalling meanwhile is
        # caught by the second pass.
        await self.bots.on_change()
        for name, count in (await asyncio.to_thread(self._in_session, lambda s: erase(s, tenant_id))).items():
            counts[name] = counts.get(name, 0) + count
        return pb.DeleteTenantDataResponse(deleted_rows=counts)
