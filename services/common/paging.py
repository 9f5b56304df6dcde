"""Pagination, the same in every List RPC: page sizes and opaque page tokens.

A page token carries the position to continue from and a fingerprint of every other field of the
request it answered, so a token reused with different filters fails with INVALID_ARGUMENT instead
of returning a wrong page. Tokens are opaque to clients: anything not issued here is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sized
from datetime import datetime
from typing import Any, cast

from google.protobuf.message import Message

from services.common.errors import InvalidArgument

_PAGING_FIELDS = ("page_size", "page_token")


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """0 means the RPC's default; a negative or too large size is the caller's error."""
    if requested < 0:
        raise InvalidArgument(f"must not be negative (got {requested})", field="page_size")
    if requested > maximum:
        raise InvalidArgument(f"is at most {maximum} (got {requested})", field="page_size")
    return requested or default


def _fingerprint(request: Message) -> str:
    """What a token is bound to: every field of the request except the paging ones."""
    rest = type(request)()
    rest.CopyFrom(request)
    for name in _PAGING_FIELDS:
        rest.ClearField(name)
    return hashlib.sha256(rest.SerializeToString(deterministic=True)).hexdigest()[:16]


def next_page_token(request: Message, position: Any) -> str:
    """The token for the page after the one answered; `position` must be JSON (e.g. a key, a list)."""
    raw = json.dumps({"p": position, "q": _fingerprint(request)}, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_position(request: Message) -> Any:
    """Where the requested page starts: None for the first page, else what `next_page_token` stored."""
    token = str(getattr(request, "page_token"))  # noqa: B009 - every List request has the field
    if not token:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, fingerprint = decoded["p"], decoded["q"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("is not a token this service returned", field="page_token") from None
    if fingerprint != _fingerprint(request):
        raise InvalidArgument(
            "belongs to a request with other fields; keep every field but page_token unchanged",
            field="page_token",
        )
    return position


def expect(position: Any, kind: type, length: int = 0) -> Any:
    """A decoded position of the expected shape, or INVALID_ARGUMENT (a token is not to be built)."""
    if not isinstance(position, kind) or (length and len(cast(Sized, position)) != length):
        raise InvalidArgument("is not a token this service returned", field="page_token")
    return position


def offset(request: Message) -> int:
    """For lists paged by position: where the requested page starts (0 for the first page)."""
    position = page_position(request)
    if position is None:
        return 0
    if not isinstance(position, int) or position < 0:
        raise InvalidArgument("is not a token this service returned", field="page_token")
    return position


def next_offset_token(request: Message, start: int, size: int, got: int) -> str:
    """Token of the page after [start, start + size) when that page was full (`got` = rows + 1 probe)."""
    return next_page_token(request, start + size) if got > size else ""


def parse_time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidArgument("is not a token this service returned", field="page_token") from None
