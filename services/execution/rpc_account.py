"""PnL and the account summary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, func, select
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as pb

from services.common.convert import time_range
from services.common.errors import InvalidArgument
from services.execution import convert, models, pnl, risk
from services.execution.reconcile import last_reconcile
from services.execution.rpc_base import Base

STEPS = {
    common.INTERVAL_1_MINUTE: timedelta(minutes=1),
    common.INTERVAL_3_MINUTES: timedelta(minutes=3),
    common.INTERVAL_5_MINUTES: timedelta(minutes=5),
    common.INTERVAL_15_MINUTES: timedelta(minutes=15),
    common.INTERVAL_30_MINUTES: timedelta(minutes=30),
    common.INTERVAL_1_HOUR: timedelta(hours=1),
    common.INTERVAL_2_HOURS: timedelta(hours=2),
    common.INTERVAL_4_HOURS: timedelta(hours=4),
    common.INTERVAL_6_HOURS: timedelta(hours=6),
    common.INTERVAL_12_HOURS: timedelta(hours=12),
    common.INTERVAL_1_DAY: timedelta(days=1),
    common.INTERVAL_1_WEEK: timedelta(weeks=1),
    common.INTERVAL_1_MONTH: timedelta(days=30),
}


def _mode(value: int) -> str:
    mode = convert.MODE_NAME.get(value)
    if mode is None:
        raise InvalidArgument("must be PAPER or LIVE", field="mode")
    return mode


class AccountRpc(Base):
    async def GetPnL(self, request: pb.GetPnLRequest, context: Any) -> pb.GetPnLResponse:
        tenant = self.caller().tenant_id
        mode = _mode(request.mode)
        start, end = time_range(request.time_range)
        step = STEPS.get(request.equity_interval)
        if step is None:
            long_range = start is not None and ((end or convert.now()) - start) > timedelta(days=90)
            step = timedelta(days=1) if long_range else timedelta(hours=1)

        def compute(session: Session) -> pb.GetPnLResponse:
            period = pnl.period(session, tenant, mode, start, end, request.bot_id)
            total = period.total
            return pb.GetPnLResponse(
                currency="USDT",
                realized_pnl=convert.text(total.realized),
                unrealized_pnl=convert.text(pnl.unrealized(session, tenant, mode, request.bot_id)),
                fees=convert.text(total.fees),
                funding=convert.text(total.funding),
                net_pnl=convert.text(total.net),
                daily=[
                    pb.DailyPnl(
                        date=date,
                        realized_pnl=convert.text(day.realized),
                        fees=convert.text(day.fees),
                        funding=convert.text(day.funding),
                        net_pnl=convert.text(day.net),
                        fill_count=day.fills,
                    )
                    for date, day in sorted(period.days.items())
                ],
                equity_curve=[
                    common.EquityPoint(
                        time=convert.stamp(when), equity=convert.text(equity), drawdown=drawdown
                    )
                    for when, equity, drawdown in (
                        [] if request.bot_id else pnl.equity_points(session, tenant, mode, start, end, step)
                    )
                ],
            )

        return await self.deps.store.run(compute)

    async def GetAccountSummary(
        self, request: pb.GetAccountSummaryRequest, context: Any
    ) -> pb.GetAccountSummaryResponse:
        tenant = self.caller().tenant_id
        mode = _mode(request.mode)
        Ord, P, W = models.Order, models.Position, models.WalletSnapshot

        def compute(session: Session) -> pb.GetAccountSummaryResponse:
            wallet = session.exec(
                select(W).where(W.tenant_id == tenant, W.mode == mode).order_by(W.time.desc()).limit(1)  # type: ignore[attr-defined]
            ).first()
            positions = session.exec(
                select(func.count()).select_from(P).where(P.tenant_id == tenant, P.mode == mode, P.size != 0)
            ).one()
            orders = session.exec(
                select(func.count())
                .select_from(Ord)
                .where(Ord.tenant_id == tenant, Ord.mode == mode, Ord.status.in_(convert.OPEN_STATUSES))  # type: ignore[attr-defined]
            ).one()
            now = convert.now()
            switches = risk.engaged_switches(session, tenant, "")
            B = models.KillSwitchRow
            switches += list(
                session.exec(select(B).where(B.scope == "BOT", B.tenant_id == tenant, B.engaged)).all()
            )
            reply = pb.GetAccountSummaryResponse(
                open_position_count=int(positions),
                open_order_count=int(orders),
                today_net_pnl=convert.text(pnl.today_net(session, tenant, mode, now)),
                unrealized_pnl=convert.text(pnl.unrealized(session, tenant, mode)),
                kill_switches=[convert.kill_switch_pb(s) for s in switches],
            )
            if wallet is not None:
                reply.wallet.CopyFrom(convert.wallet_pb(wallet))
            reconciled = last_reconcile(session, tenant, mode)
            if reconciled is not None:
                reply.last_reconcile_time.CopyFrom(convert.stamp(reconciled))
            return reply

        return await self.deps.store.run(compute)
