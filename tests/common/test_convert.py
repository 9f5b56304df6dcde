"""Times between rows and the API: what a request may send is checked, naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from tradebot.common.v1 import common_pb2

from services.common.convert import time_range, timestamp, to_datetime
from services.common.errors import InvalidArgument


def test_a_row_time_round_trips_and_an_unset_time_stays_unset() -> None:
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    stamp = timestamp(when)
    assert (stamp.seconds, stamp.nanos) == (int(when.timestamp()), 123456000)
    assert to_datetime(stamp, "occur_time") == when
    assert timestamp(None) is None


def test_a_timestamp_no_datetime_holds_is_refused_naming_the_field() -> None:
    beyond = Timestamp(seconds=253402300800)  # 10000-01-01: past what a datetime holds
    with pytest.raises(InvalidArgument) as refused:
        to_datetime(beyond, "expire_time")
    assert "expire_time" in str(refused.value) and "not a valid point in time" in str(refused.value)


def test_a_time_range_may_be_open_and_must_not_be_inverted() -> None:
    open_end = common_pb2.TimeRange(start=Timestamp(seconds=1_700_000_000))
    assert time_range(open_end, "time_range") == (datetime.fromtimestamp(1_700_000_000, UTC), None)
    assert time_range(common_pb2.TimeRange(), "time_range") == (None, None)
    inverted = common_pb2.TimeRange(start=Timestamp(seconds=20), end=Timestamp(seconds=10))
    with pytest.raises(InvalidArgument) as refused:
        time_range(inverted, "time_range")
    assert "end must be after start" in str(refused.value) and "time_range" in str(refused.value)
    past_end = common_pb2.TimeRange(end=Timestamp(seconds=-62135596801))  # before year 1
    with pytest.raises(InvalidArgument) as beyond:
        time_range(past_end, "window")
    assert "window.end" in str(beyond.value)
