"""Times between the rows (aware datetimes) and the API (protobuf Timestamps), one way for every
service: a request's timestamp outside what a datetime holds is the caller's error, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.common.v1 import common_pb2

from services.common.errors import InvalidArgument


@overload
def timestamp(when: datetime) -> Timestamp: ...
@overload
def timestamp(when: None) -> None: ...
@overload
def timestamp(when: datetime | None) -> Timestamp | None: ...
def timestamp(when: datetime | None) -> Timestamp | None:
    """A row's time as a Timestamp; None (a time not set) stays unset in the message."""
    if when is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def to_datetime(stamp: Timestamp, field: str) -> datetime:
    """A request timestamp as an aware datetime; INVALID_ARGUMENT naming `field` outside years 1..9999."""
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidArgument("is not a valid point in time", field=field) from None


def time_range(
    value: common_pb2.TimeRange, field: str = "time_range"
) -> tuple[datetime | None, datetime | None]:
    """A request's time filter: either end may be open; an inverted or empty range is the caller's error."""
    start = to_datetime(value.start, f"{field}.start") if value.HasField("start") else None
    end = to_datetime(value.end, f"{field}.end") if value.HasField("end") else None
    if start and end and end <= start:
        raise InvalidArgument("end must be after start", field=field)
    return start, end
