"""What deciding a signal reads (its earlier outcome or order, the bot, kill switches, limits,
positions, equity, today's PnL), for many signals in one transaction with set-based queries: the
read side of a thousand signals on one candle is a handful of queries, not thousands.

Except for the order (rare: a signal being resumed, and `_resume` changes it), the rows come back as
plain result rows with the models' attribute names, not ORM instances: building a thousand bots'
instances and reading their instrumented attributes was most of the read side's CPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

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
    mode: str = "LIVE"  # the account (LIVE or PAPER) whose positions, equity and PnL count


@dataclass
class View:
    # Rows named like the models noted (plain result rows, read-only).
    outcome: Any = None  # models.SignalOutcome
    order: models.Order | None = None
    bot: Any = None  # models.Bot
    switches: list[Any] = field(default_factory=list)  # models.KillSwitchRow
    limits: risk.Limits | None = None
    positions: dict[tuple[str, str], Any] = field(default_factory=dict)  # models.Position
    equity: Decimal | None = None
    today_net: Decimal = ZERO
    unrealized: Decimal = ZERO


def _rows(model: Any) -> Any:
    """A Core select of every column of `model`'s table: rows, not ORM instances."""
    return select(*model.__table__.columns)


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
        for o in session.execute(
            _rows(S).where(col(S.tenant_id).in_(tenants), col(S.signal_id).in_([k.signal_id for k in keys]))
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
    bots = {b.bot_id: b for b in session.execute(_rows(B).where(col(B.bot_id).in_([k.bot_id for k in keys])))}
    switches = list(
        session.execute(
            _rows(K).where(col(K.engaged), or_(K.scope == "GLOBAL", col(K.tenant_id).in_(tenants)))
        )
    )
    limits: dict[tuple[str, str], Any] = {
        (r.tenant_id, r.bot_id): r for r in session.execute(_rows(L).where(col(L.tenant_id).in_(tenants)))
    }
    modes = sorted({k.mode for k in keys})
    # Keyed by (tenant, mode): a tenant's PAPER account never counts toward its LIVE limits.
    positions: dict[tuple[str, str], dict[tuple[str, str], Any]] = {}
    for p in session.execute(_rows(P).where(col(P.tenant_id).in_(tenants), col(P.mode).in_(modes))):
        positions.setdefault((p.tenant_id, p.mode), {})[(p.category, p.symbol)] = p
    params = {"tenants": tenants, "modes": modes}
    equity = {
        (row[0], row[1]): row[2]
        for row in session.execute(
            text(
                "select distinct on (tenant_id, mode) tenant_id, mode, total_equity from exec_wallet"
                " where tenant_id = any(:tenants) and mode = any(:modes)"
                " order by tenant_id, mode, time desc"
            ),
            params,
        )
    }
    since = pnl.start_of_day(now)
    today: dict[tuple[str, str], Decimal] = {}
    for sql in (
        "select tenant_id, mode, sum(realized_pnl - exec_fee) from exec_fill where tenant_id = any(:tenants)"
        " and mode = any(:modes) and exec_time >= :since group by tenant_id, mode",
        "select tenant_id, mode, sum(amount) from exec_funding where tenant_id = any(:tenants)"
        " and mode = any(:modes) and exec_time >= :since group by tenant_id, mode",
    ):
        for tenant, mode, amount in session.execute(text(sql), {**params, "since": since}):
            today[(tenant, mode)] = today.get((tenant, mode), ZERO) + (amount or ZERO)
    views = []
    for key in keys:
        account = (key.tenant_id, key.mode)
        held = positions.get(account, {})
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
                equity=equity.get(account),
                today_net=today.get(account, ZERO),
                unrealized=sum((p.unrealized_pnl for p in held.values() if p.size), ZERO),
            )
        )
    return views
