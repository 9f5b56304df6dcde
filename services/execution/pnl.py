"""Realised PnL, fees and funding from stored fills and funding rows; unrealised PnL from positions;
equity history from wallet snapshots. Realised PnL is before fees, as Bybit's closedPnl is not:
net = realised - fees + funding."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, select

from services.execution import models

ZERO = Decimal(0)


@dataclass
class Day:
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    fills: int = 0

    @property
    def net(self) -> Decimal:
        return self.realized - self.fees + self.funding


@dataclass
class Period:
    total: Day = field(default_factory=Day)
    days: dict[str, Day] = field(default_factory=lambda: defaultdict(Day))


def period(
    session: Session,
    tenant_id: str,
    mode: str,
    start: datetime | None,
    end: datetime | None,
    bot_id: str = "",
) -> Period:
    F, U = models.Fill, models.Funding
    fills = select(F).where(F.tenant_id == tenant_id, F.mode == mode)
    funding = select(U).where(U.tenant_id == tenant_id, U.mode == mode)
    if bot_id:
        fills = fills.where(F.bot_id == bot_id)
    if start is not None:
        fills = fills.where(F.exec_time >= start)
        funding = funding.where(U.exec_time >= start)
    if end is not None:
        fills = fills.where(F.exec_time < end)
        funding = funding.where(U.exec_time < end)
    result = Period()
    for fill in session.exec(fills):
        day = result.days[fill.exec_time.astimezone(UTC).date().isoformat()]
        for bucket in (day, result.total):
            bucket.realized += fill.realized_pnl
            bucket.fees += fill.exec_fee
            bucket.fills += 1
    if not bot_id:  # funding is charged on the account's position, not on a bot
        for row in session.exec(funding):
            day = result.days[row.exec_time.astimezone(UTC).date().isoformat()]
            day.funding += row.amount
            result.total.funding += row.amount
    return result


def unrealized(session: Session, tenant_id: str, mode: str, bot_id: str = "") -> Decimal:
    P = models.Position
    query = select(P).where(P.tenant_id == tenant_id, P.mode == mode, P.size != 0)
    if bot_id:
        query = query.where(P.bot_id == bot_id)
    return sum((p.unrealized_pnl for p in session.exec(query)), ZERO)


def start_of_day(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def today_net(session: Session, tenant_id: str, mode: str, now: datetime) -> Decimal:
    """Realised net PnL since 00:00 UTC (the daily loss limit adds the unrealised PnL to it)."""
    return period(session, tenant_id, mode, start_of_day(now), None).total.net


def equity_points(
    session: Session, tenant_id: str, mode: str, start: datetime | None, end: datetime | None, step: timedelta
) -> list[tuple[datetime, Decimal, float]]:
    """(time, equity, drawdown): the last snapshot of each `step` bucket, drawdown from the running peak."""
    W = models.WalletSnapshot
    query = select(W).where(W.tenant_id == tenant_id, W.mode == mode).order_by(W.time)  # type: ignore[arg-type]
    if start is not None:
        query = query.where(W.time >= start)
    if end is not None:
        query = query.where(W.time < end)
    buckets: dict[int, tuple[datetime, Decimal]] = {}
    seconds = step.total_seconds()
    for row in session.exec(query):
        buckets[int(row.time.timestamp() // seconds)] = (row.time, row.total_equity)
    points = []
    peak = ZERO
    for _, (when, equity) in sorted(buckets.items()):
        peak = max(peak, equity)
        drawdown = float((peak - equity) / peak) if peak > 0 else 0.0
        points.append((when, equity, drawdown))
    return points
