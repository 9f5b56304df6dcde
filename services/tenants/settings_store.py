"""Tenant settings: defaults, validation and the field-mask update.

Stored as plain JSON next to typed columns; everything written is validated first, and every error
names the field (e.g. "settings.notifications.webhook_url").
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from google.protobuf.json_format import MessageToDict
from tradebot.common.v1 import common_pb2
from tradebot.tenants.v1 import tenants_service_pb2 as pb

from services.common.errors import InvalidArgument
from services.tenants.models import TenantSettings

DEFAULT_SESSION_SECONDS = 7 * 24 * 3600
MIN_SESSION_SECONDS = 3600
MAX_SESSION_SECONDS = 30 * 24 * 3600
DECIMAL_LIMITS = ("max_position_notional", "max_leverage", "daily_loss_limit")
INT_LIMITS = ("max_open_positions", "max_orders_per_minute")
MAX_LEVERAGE = Decimal(100)
EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")

# Conservative defaults a new tenant starts with; an owner may change them (UpdateSettings).
DEFAULT_RISK_LIMITS = {
    "max_position_notional": "1000",
    "max_open_positions": 3,
    "max_leverage": "2",
    "daily_loss_limit": "100",
    "max_orders_per_minute": 20,
}
MASK_PATHS = {
    "default_risk_limits",
    *(f"default_risk_limits.{name}" for name in (*DECIMAL_LIMITS, *INT_LIMITS)),
    "notifications",
    "notifications.email",
    "notifications.webhook_url",
    "notifications.kinds",
    "session_lifetime",
    "require_totp",
}


def new_settings(tenant_id: str, email: str) -> TenantSettings:
    return TenantSettings(
        tenant_id=tenant_id,
        default_risk_limits=dict(DEFAULT_RISK_LIMITS),
        notifications={"email": email, "webhook_url": "", "kinds": ["NOTIFICATION_KIND_KILL_SWITCH"]},
        session_lifetime_seconds=DEFAULT_SESSION_SECONDS,
        require_totp=False,
        update_time=datetime.now(UTC),
    )


def to_proto(row: TenantSettings) -> pb.TenantSettings:
    limits = row.default_risk_limits
    notifications = row.notifications
    message = pb.TenantSettings(
        default_risk_limits=common_pb2.RiskLimits(
            **{k: str(limits.get(k, "")) for k in DECIMAL_LIMITS},
            **{k: int(limits.get(k, 0)) for k in INT_LIMITS},
        ),
        notifications=pb.NotificationPreferences(
            email=notifications.get("email", ""),
            webhook_url=notifications.get("webhook_url", ""),
            kinds=[pb.NotificationKind.Value(kind) for kind in notifications.get("kinds", [])],
        ),
        require_totp=row.require_totp,
    )
    message.session_lifetime.FromSeconds(row.session_lifetime_seconds)
    return message


def _risk_limit(name: str, limits: common_pb2.RiskLimits) -> Any:
    field = f"settings.default_risk_limits.{name}"
    value = getattr(limits, name)
    if name in INT_LIMITS:
        if not 0 <= value <= 1_000_000:
            raise InvalidArgument("must be between 0 (not set) and 1000000", field=field)
        return int(value)
    if value == "":
        return ""
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidArgument(f"must be a decimal number, got {value[:40]!r}", field=field) from None
    if not number.is_finite() or number <= 0:
        raise InvalidArgument("must be a positive decimal number", field=field)
    if name == "max_leverage" and number > MAX_LEVERAGE:
        raise InvalidArgument(f"must be at most {MAX_LEVERAGE}", field=field)
    if number > Decimal("1e15"):
        raise InvalidArgument("is out of range", field=field)
    return str(number)


def _email(value: str) -> str:
    if value and not EMAIL.match(value):
        raise InvalidArgument("is not an email address", field="settings.notifications.email")
    return value.lower()


def _webhook(value: str) -> str:
    field = "settings.notifications.webhook_url"
    if not value:
        return ""
    if len(value) > 2048:
        raise InvalidArgument("must be at most 2048 characters", field=field)
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise InvalidArgument("is not a URL", field=field) from None
    if parts.scheme != "https" or not host:
        raise InvalidArgument("must be an https:// URL with a host", field=field)
    if parts.username or parts.password:
        raise InvalidArgument("must not carry a user name or password", field=field)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and not address.is_global):
        # Webhooks are called from inside the platform's network: never at its own private addresses.
        raise InvalidArgument("must point at a public host", field=field)
    return value


def _kinds(values: Any) -> list[str]:
    names = []
    for value in values:
        if value not in pb.NotificationKind.values() or value == 0:
            raise InvalidArgument(f"unknown notification kind {value}", field="settings.notifications.kinds")
        names.append(pb.NotificationKind.Name(value))
    return sorted(set(names))


def apply(row: TenantSettings, settings: pb.TenantSettings, paths: list[str]) -> dict[str, str]:
    """Validate and apply the masked fields to `row`; returns what changed, for the audit entry."""
    if not paths:
        raise InvalidArgument("name the fields to change, e.g. 'session_lifetime'", field="update_mask")
    unknown = [p for p in paths if p not in MASK_PATHS]
    if unknown:
        raise InvalidArgument(f"unknown field {unknown[0][:80]!r}", field="update_mask")
    limits = dict(row.default_risk_limits)
    notifications = dict(row.notifications)
    changed: dict[str, str] = {}
    for path in paths:
        if path.startswith("default_risk_limits"):
            names = (*DECIMAL_LIMITS, *INT_LIMITS) if path == "default_risk_limits" else (path.split(".")[1],)
            for name in names:
                limits[name] = _risk_limit(name, settings.default_risk_limits)
                changed[f"default_risk_limits.{name}"] = str(limits[name])
        elif path.startswith("notifications"):
            given = settings.notifications
            if path in ("notifications", "notifications.email"):
                notifications["email"] = changed["notifications.email"] = _email(given.email)
            if path in ("notifications", "notifications.webhook_url"):
                notifications["webhook_url"] = changed["notifications.webhook_url"] = _webhook(
                    given.webhook_url
                )
            if path in ("notifications", "notifications.kinds"):
                notifications["kinds"] = _kinds(given.kinds)
                changed["notifications.kinds"] = ",".join(notifications["kinds"])
        elif path == "session_lifetime":
            duration = settings.session_lifetime
            seconds = duration.seconds
            if duration.nanos or not MIN_SESSION_SECONDS <= seconds <= MAX_SESSION_SECONDS:
                raise InvalidArgument(
                    "must be whole seconds between 1 hour and 30 days", field="settings.session_lifetime"
                )
            row.session_lifetime_seconds = seconds
            changed["session_lifetime"] = f"{seconds}s"
        elif path == "require_totp":
            row.require_totp = settings.require_totp
            changed["require_totp"] = str(settings.require_totp).lower()
    row.default_risk_limits = limits
    row.notifications = notifications
    row.update_time = datetime.now(UTC)
    return changed


def export(row: TenantSettings) -> dict[str, Any]:
    return MessageToDict(to_proto(row), preserving_proto_field_name=True)
