"""Wire values and the service's own: enums to Bybit names, typed parameter values, decimal strings
and timestamps. Errors name the request field."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.common.v1 import common_pb2
from tradebot.strategy.v1 import events_pb2

from services.common.errors import InvalidArgument
from services.strategy.strategies.base import Strategy

MODES = {common_pb2.TRADING_MODE_PAPER: "paper", common_pb2.TRADING_MODE_LIVE: "live"}
MODE_ENUMS = {name: enum for enum, name in MODES.items()}
STATUSES = {
    events_pb2.BOT_STATUS_CREATED: "created",
    events_pb2.BOT_STATUS_RUNNING: "running",
    events_pb2.BOT_STATUS_PAUSED: "paused",
    events_pb2.BOT_STATUS_STOPPED: "stopped",
}
STATUS_ENUMS = {name: enum for enum, name in STATUSES.items()}


def mode_name(value: int, field: str = "mode") -> str:
    if value not in MODES:
        raise InvalidArgument("must be TRADING_MODE_PAPER or TRADING_MODE_LIVE", field=field)
    return MODES[value]


def positive_decimal(text: str, field: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidArgument(f'must be a decimal string such as "1000", got {text!r}', field=field) from None
    if not value.is_finite() or value <= 0:
        raise InvalidArgument(f"must be a positive decimal, got {text!r}", field=field)
    return value


def decimal_text(value: Decimal) -> str:
    """Plain notation, never an exponent (the wire convention for decimal strings)."""
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def price_text(value: float) -> str:
    """A float64 price as the shortest decimal string that reads back as the same float."""
    if math.isnan(value):
        return ""
    text = repr(float(value))
    if "e" in text or "n" in text:  # exponent or infinity: Decimal spells it out (or refuses)
        return decimal_text(Decimal(text))
    # repr is already the shortest plain form; only a whole number's ".0" goes (as decimal_text does).
    # Several of these per signal, on the candle path: Decimal's normalize costs more than the rest.
    return text[:-2] if text.endswith(".0") else text


def parameter_overrides(
    strategy: Strategy, values: Any, field: str = "parameters"
) -> dict[str, int | float | bool]:
    """Typed wire values as plain Python values; the value kind must match the schema's type."""
    out: dict[str, int | float | bool] = {}
    for name, value in values.items():
        param = strategy.param(name)  # names the unknown parameter
        kind = value.WhichOneof("kind")
        expected = {int: ("int_value",), float: ("float_value", "int_value"), bool: ("bool_value",)}
        if kind not in expected[param.type]:
            raise InvalidArgument(
                f"must be given as {expected[param.type][0]}, got {kind or 'no value'}",
                field=f"{field}.{name}",
            )
        out[name] = getattr(value, kind)
    return out


def parameter_value(value: int | float | bool) -> common_pb2.ParameterValue:
    if isinstance(value, bool):
        return common_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.ParameterValue(int_value=value)
    return common_pb2.ParameterValue(float_value=float(value))


def timestamp(ms_or_dt: int | datetime | None) -> Timestamp | None:
    if ms_or_dt is None:
        return None
    ts = Timestamp()
    if isinstance(ms_or_dt, datetime):
        ts.FromDatetime(ms_or_dt.astimezone(UTC))
    else:
        ts.FromMilliseconds(ms_or_dt)
    return ts


def now() -> datetime:
    return datetime.now(UTC)
