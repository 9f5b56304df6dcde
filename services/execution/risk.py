"""Risk limits (tenant, bot, platform caps), kill switches, the per-tenant circuit breaker and the order
rate: the rules every order passes before it is sent.

Limits inherit bot -> tenant -> platform cap, and the cap always wins: a client can tighten, never
loosen beyond it. The circuit breaker and the order rate are kept in memory: after a restart a
tenant starts with a closed breaker and an empty minute, which errs on the side of trading only as
much as one minute of orders, and reconciliation runs before any order anyway.
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session, or_, select
from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import events_pb2 as ev

from services.common.errors import InvalidArgument
from services.execution import convert, models


@dataclass(frozen=True)
class Limits:
    max_position_notional: Decimal
    max_open_positions: int
    max_leverage: Decimal
    daily_loss_limit: Decimal
    max_orders_per_minute: int


LIMIT_FIELDS = tuple(f.name for f in fields(Limits))
DECIMAL_FIELDS = ("max_position_notional", "max_leverage", "daily_loss_limit")


def effective(caps: Limits, tenant: models.RiskLimitsRow | None, bot: models.RiskLimitsRow | None) -> Limits:
    values: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        chosen = getattr(caps, name)
        for row in (tenant, bot):  # the narrower scope overrides
            value = getattr(row, name) if row is not None else None
            if value:
                chosen = value
        values[name] = min(chosen, getattr(caps, name))
    return Limits(**values)


def limits_pb(row: models.RiskLimitsRow | Limits | None) -> common.RiskLimits:
    if row is None:
        return common.RiskLimits()
    return common.RiskLimits(
        max_position_notional=convert.text(row.max_position_notional) if row.max_position_notional else "",
        max_open_positions=row.max_open_positions or 0,
        max_leverage=convert.text(row.max_leverage) if row.max_leverage else "",
        daily_loss_limit=convert.text(row.daily_loss_limit) if row.daily_loss_limit else "",
        max_orders_per_minute=row.max_orders_per_minute or 0,
    )


def parse_limits(limits: common.RiskLimits, caps: Limits) -> dict[str, Any]:
    """Validate requested limits: positive, and never above the platform cap. Unset stays None."""
    parsed: dict[str, Any] = {}
    for name in LIMIT_FIELDS:
        raw = getattr(limits, name)
        field = f"limits.{name}"
        if name in DECIMAL_FIELDS:
            if raw == "":
                parsed[name] = None
                continue
            try:
                value: Any = Decimal(raw)
            except InvalidOperation:
                raise InvalidArgument(f"{raw!r} is not a decimal number", field=field) from None
            if not value.is_finite() or value <= 0:
                raise InvalidArgument(f"must be a positive decimal, got {raw!r}", field=field)
        else:
            if raw == 0:
                parsed[name] = None
                continue
            value = raw
            if value < 0:
                raise InvalidArgument(f"must be positive, got {raw}", field=field)
        cap = getattr(caps, name)
        if value > cap:
            raise InvalidArgument(
                f"{raw} is above the platform cap {convert.text(Decimal(cap))}", field=field
            )
        parsed[name] = value
    return parsed


def loosens(before: Limits, after: Limits) -> bool:
    return any(getattr(after, name) > getattr(before, name) for name in LIMIT_FIELDS)


def load_limits(session: Session, tenant_id: str, bot_id: str) -> tuple[models.RiskLimitsRow | None, ...]:
    rows = session.exec(
        select(models.RiskLimitsRow).where(
            models.RiskLimitsRow.tenant_id == tenant_id,
            or_(models.RiskLimitsRow.bot_id == "", models.RiskLimitsRow.bot_id == bot_id),
        )
    ).all()
    tenant = next((r for r in rows if r.bot_id == ""), None)
    bot = next((r for r in rows if r.bot_id == bot_id and bot_id), None)
    return tenant, bot


def engaged_switches(session: Session, tenant_id: str, bot_id: str) -> list[models.KillSwitchRow]:
    K = models.KillSwitchRow
    return list(
        session.exec(
            select(K).where(
                K.engaged,
                or_(
                    K.scope == "GLOBAL",
                    (K.scope == "TENANT") & (K.tenant_id == tenant_id),
                    (K.scope == "BOT") & (K.tenant_id == tenant_id) & (K.bot_id == bot_id),
                ),
            )
        ).all()
    )


def new_event(
    *,
    tenant_id: str,
    kind: int,
    reason: int,
    message: str,
    bot_id: str = "",
    signal_id: str = "",
    order_id: str = "",
    category: str = "",
    symbol: str = "",
    details: dict[str, str] | None = None,
    mode: str = "LIVE",
) -> models.RiskEventRow:
    return models.RiskEventRow(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        bot_id=bot_id,
        signal_id=signal_id,
        order_id=order_id,
        category=category,
        symbol=symbol,
        kind=ev.RiskEventKind.Name(kind),
        reason=ev.RiskReason.Name(reason),
        message=message,
        details=details or {},
        mode=mode,
        occur_time=convert.now(),
    )


def account_key(tenant_id: str, mode: str) -> str:
    """Breakers and order rates count per account: a tenant's PAPER errors never pause its LIVE orders."""
    return tenant_id if mode == "LIVE" else f"{tenant_id}/{mode}"


class CircuitBreaker:
    """Pauses a tenant after `threshold` exchange errors within `window` seconds, for `cooldown` seconds.

    After the cooldown one order may try (half-open); its success closes the breaker, its failure
    opens it again at once.
    """

    def __init__(self, threshold: int, window: float, cooldown: float) -> None:
        self.threshold = threshold
        self.window = window
        self.cooldown = cooldown
        self._errors: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._open_until: dict[str, float] = {}

    def failure(self, tenant_id: str) -> bool:
        """Count one exchange error; True when this error trips the breaker."""
        now = time.monotonic()
        errors = self._errors[tenant_id]
        errors.append(now)
        while errors and errors[0] < now - self.window:
            errors.popleft()
        half_open = tenant_id in self._open_until and self._open_until[tenant_id] <= now
        if len(errors) >= self.threshold or half_open:
            was_open = self._open_until.get(tenant_id, 0.0) > now
            self._open_until[tenant_id] = now + self.cooldown
            errors.clear()
            return not was_open
        return False

    def success(self, tenant_id: str) -> bool:
        """An exchange call worked; True when that closed a tripped breaker."""
        self._errors.pop(tenant_id, None)
        return self._open_until.pop(tenant_id, None) is not None

    def is_open(self, tenant_id: str) -> bool:
        return self._open_until.get(tenant_id, 0.0) > time.monotonic()


class OrderRate:
    """Orders sent per tenant in the last rolling minute."""

    def __init__(self) -> None:
        self._sent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def count(self, tenant_id: str) -> int:
        sent = self._sent[tenant_id]
        cutoff = time.monotonic() - 60.0
        while sent and sent[0] < cutoff:
            sent.popleft()
        return len(sent)

    def record(self, tenant_id: str) -> None:
        self._sent[tenant_id].append(time.monotonic())
