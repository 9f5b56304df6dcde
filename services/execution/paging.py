"""Opaque page tokens (an offset bound to the request's filters, so a token reused with other filters
fails with INVALID_ARGUMENT instead of returning a wrong page), and the request's time range."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from tradebot.common.v1 import common_pb2 as common

from services.common.errors import InvalidArgument


def page_size(requested: int, default: int, maximum: int) -> int:
    if requested < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    return min(requested or default, maximum)


def _filters(request: Message) -> str:
    fields = {f.name: v for f, v in request.ListFields() if f.name not in ("page_size", "page_token")}
    raw = json.dumps({k: str(v) for k, v in fields.items()}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def offset(request: Message) -> int:
    token = str(getattr(request, "page_token", ""))
    if not token:
        return 0
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, fingerprint = int(raw["o"]), str(raw["f"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("is not a token this service returned", field="page_token") from None
    if fingerprint != _filters(request) or position < 0:
        raise InvalidArgument("belongs to a request with other filters", field="page_token")
    return position


def next_token(request: Message, start: int, size: int, got: int) -> str:
    """Token of the page after [start, start + size) when that page was full (`got` = rows + 1 probe)."""
    if got <= size:
        return ""
    raw = json.dumps({"o": start + size, "f": _filters(request)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def time_range(value: common.TimeRange, field: str = "time_range") -> tuple[datetime | None, datetime | None]:
    start = value.start.ToDatetime(tzinfo=_utc()) if value.HasField("start") else None
    end = value.end.ToDatetime(tzinfo=_utc()) if value.HasField("end") else None
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("end must be after start", field=field)
    return start, end


def _utc() -> Any:
    from datetime import UTC

    return UTC
