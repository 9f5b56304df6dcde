"""The market vocabulary every service shares: Bybit's categories and intervals, their wire names
and their lengths. One table, so the contracts' enums and Bybit's strings never drift apart."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from tradebot.common.v1 import common_pb2

from services.common.errors import InvalidArgument

MINUTE_MS = 60_000
DAY_MS = 1440 * MINUTE_MS
WEEK_MS = 7 * DAY_MS

CATEGORIES = {common_pb2.CATEGORY_SPOT: "spot", common_pb2.CATEGORY_LINEAR: "linear"}
CATEGORY_ENUMS = {name: enum for enum, name in CATEGORIES.items()}

# Contract enum -> Bybit's interval string (also the last token of a candle subject).
INTERVALS = {
    common_pb2.INTERVAL_1_MINUTE: "1",
    common_pb2.INTERVAL_3_MINUTES: "3",
    common_pb2.INTERVAL_5_MINUTES: "5",
    common_pb2.INTERVAL_15_MINUTES: "15",
    common_pb2.INTERVAL_30_MINUTES: "30",
    common_pb2.INTERVAL_1_HOUR: "60",
    common_pb2.INTERVAL_2_HOURS: "120",
    common_pb2.INTERVAL_4_HOURS: "240",
    common_pb2.INTERVAL_6_HOURS: "360",
    common_pb2.INTERVAL_12_HOURS: "720",
    common_pb2.INTERVAL_1_DAY: "D",
    common_pb2.INTERVAL_1_WEEK: "W",
    common_pb2.INTERVAL_1_MONTH: "M",
}
INTERVAL_ENUMS = {name: enum for enum, name in INTERVALS.items()}


def category_name(value: int, field: str = "category") -> str:
    name = CATEGORIES.get(value)
    if name is None:
        raise InvalidArgument("set a supported category: CATEGORY_SPOT or CATEGORY_LINEAR", field=field)
    return name


def interval_name(value: int, field: str = "interval") -> str:
    name = INTERVALS.get(value)
    if name is None:
        known = ", ".join(common_pb2.Interval.Name(v) for v in INTERVALS)
        raise InvalidArgument(f"unknown interval {value}; use one of {known}", field=field)
    return name


def interval_ms(interval: str) -> int:
    """Nominal length, exact for every interval but "M" (taken as 31 days: an upper bound)."""
    if interval == "D":
        return DAY_MS
    if interval == "W":
        return WEEK_MS
    if interval == "M":
        return 31 * DAY_MS
    return int(interval) * MINUTE_MS


def next_start(start: int, interval: str) -> int:
    """Start of the candle after the one starting at `start` (calendar months for "M")."""
    if interval != "M":
        return start + interval_ms(interval)
    d = datetime.fromtimestamp(start / 1000, tz=UTC)
    year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000
