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

from sqlalchemy import String, any_, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
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


def _among(column: Any, values: list[str]) -> Any:
    """`column = any(<one text[] parameter>)`: an IN list would bind (and render) a parameter per
    value, a thousand per query on a busy candle."""
    return col(column) == any_(bindparam(None, values, type_=ARRAY(String)))


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
            _rows(S).where(_among(S.tenant_id, tenants), _among(S.signal_id, [k.signal_id for k in keys]))
        )
    }
    orders = {
        (o.tenant_id, o.order_link_id): o
        for o in session.exec(
            select(Ord).where(
                _among(Ord.tenant_id, tenants), _among(Ord.order_link_id, [k.order_link_id for k in keys])
            )
        )
    }
    bots = {b.bot_id: b for b in session.execute(_rows(B).where(_among(B.bot_id, [k.bot_id for k in keys])))}
    switches = list(
        session.execute(
            _rows(K).where(col(K.engaged), or_(K.scope == "GLOBAL", _among(K.tenant_id, tenants)))
        )
    )
    limits: dict[tuple[str, str], Any] = {
        (r.tenant_id, r.bot_id): r for r in session.execute(_rows(L).where(_among(L.tenant_id, tenants)))
    }
    modes = sorted({k.mode for k in keys})
    # Keyed by (tenant, mode): a tenant's PAPER account never counts toward its LIVE limits.
    positions: dict[tuple[str, str], dict[tuple[str, str], Any]] = {}
    for p in session.execute(_rows(P).where(_among(P.tenant_id, tenants), _among(P.mode, modes))):
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
    caps_only = risk.effective(caps, None, None)  # most tenants set no limits of their own
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
                limits=_limits(caps, caps_only, limits, key),
                positions=held,
                equity=equity.get(account),
                today_net=today.get(account, ZERO),
                unrealized=sum((p.unrealized_pnl for p in held.values() if p.size), ZERO),
            )
        )
    return views


def _limits(
    caps: risk.Limits, caps_only: risk.Limits, rows: dict[tuple[str, str], Any], key: Key
) -> risk.Limits:
    tenant, bot = rows.get((key.tenant_id, "")), rows.get((key.tenant_id, key.bot_id))
    return caps_only if tenant is None and bot is None else risk.effective(caps, tenant, bot)
