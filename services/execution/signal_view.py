"""What deciding a signal reads (its earlier outcome or order, the bot, kill switches, limits,
positions, equity, today's PnL), for many signals in one transaction with set-based queries: the
read side of a thousand signals on one candle is a handful of queries, not thousands."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlmodel import Session, col, or_, select

from services.execution import models, pnl, risk

ZERO = Decimal(0)


@dataclass(frozen=True)
class Key:
    tenant_id: str
    bot_id: str
    signal_id: str
    order_link_id: str


@dataclass
class View:
    outcome: models.SignalOutcome | None = None
    order: models.Order | None = None
    bot: models.Bot | None = None
    switches: list[models.KillSwitchRow] = field(default_factory=list)
    limits: risk.Limits | None = None
    positions: dict[tuple[str, str], models.Position] = field(default_factory=dict)
    equity: Decimal | None = None
    today_net: Decimal = ZERO
    unrealized: Decimal = ZERO


def read_views(session: Session, keys: list[Key], caps: risk.Limits, now: datetime) -> list[View]:
    tenants = sorted({k.tenant_id for k in keys})
    S, Ord, B, K, L, P = (
        models.SignalOutcome,
        models.Order,
        models.Bot,
        models.KillSwitchRow,
        models.RiskLimitsRow,
        models.Position,
    )
    outcomes = {
        (o.tenant_id, o.signal_id): o
        for o in session.exec(
            select(S).where(col(S.tenant_id).in_(tenants), col(S.signal_id).in_([k.signal_id for k in keys]))
        )
    }
    orders = {
        (o.tenant_id, o.order_link_id): o
        for o in session.exec(
            select(Ord).where(
                col(Ord.tenant_id).in_(tenants), col(Ord.order_link_id).in_([k.order_link_id for k in keys])
            )
        )
    }
    bots = {b.bot_id: b for b in session.exec(select(B).where(col(B.bot_id).in_([k.bot_id for k in keys])))}
    switches = list(
        session.exec(select(K).where(K.engaged, or_(K.scope == "GLOBAL", col(K.tenant_id).in_(tenants))))
    )
    limits = {
        (r.tenant_id, r.bot_id): r for r in session.exec(select(L).where(col(L.tenant_id).in_(tenants)))
    }
    positions: dict[str, dict[tuple[str, str], models.Position]] = {}
    for p in session.exec(select(P).where(col(P.tenant_id).in_(tenants), P.mode == "LIVE")):
        positions.setdefault(p.tenant_id, {})[(p.category, p.symbol)] = p
    equity = {
        row[0]: row[1]
        for row in session.execute(
            text(
                "select distinct on (tenant_id) tenant_id, total_equity from exec_wallet"
                " where tenant_id = any(:tenants) and mode = 'LIVE' order by tenant_id, time desc"
            ),
            {"tenants": tenants},
        )
    }
    since = pnl.start_of_day(now)
    today: dict[str, Decimal] = {}
    for sql in (
        "select tenant_id, sum(realized_pnl - exec_fee) from exec_fill"
        " where tenant_id = any(:tenants) and mode = 'LIVE' and exec_time >= :since group by tenant_id",
        "select tenant_id, sum(amount) from exec_funding"
        " where tenant_id = any(:tenants) and mode = 'LIVE' and exec_time >= :since group by tenant_id",
    ):
        for tenant, amount in session.execute(text(sql), {"tenants": tenants, "since": since}):
            today[tenant] = today.get(tenant, ZERO) + (amount or ZERO)
    views = []
    for key in keys:
        held = positions.get(key.tenant_id, {})
        views.append(
            View(
                outcome=outcomes.get((key.tenant_id, key.signal_id)),
                order=orders.get((key.tenant_id, key.order_link_id)),
                bot=bots.get(key.bot_id),
                switches=[
                    s
                    for s in switches
                    if s.scope == "GLOBAL"
                    or (s.tenant_id == key.tenant_id and (s.scope == "TENANT" or s.bot_id == key.bot_id))
                ],
                limits=risk.effective(
                    caps, limits.get((key.tenant_id, "")), limits.get((key.tenant_id, key.bot_id))
                ),
                positions=held,
                equity=equity.get(key.tenant_id),
                today_net=today.get(key.tenant_id, ZERO),
                unrealized=sum((p.unrealized_pnl for p in held.values() if p.size), ZERO),
            )
        )
    return views
