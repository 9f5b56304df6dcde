"""Opaque page tokens: the position to continue from, bound to the request's other fields so a token
reused with different filters fails with INVALID_ARGUMENT instead of returning a wrong page."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sized
from datetime import datetime
from typing import Any, cast

from services.common.errors import InvalidArgument


def page_size(requested: int, default: int, maximum: int) -> int:
    if requested < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    return min(requested or default, maximum)


def _fingerprint(filters: Any) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode(position: Any, filters: Any) -> str:
    raw = json.dumps({"p": position, "f": _fingerprint(filters)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, filters: Any) -> Any:
    """The position a page token continues from; None for the first page."""
    if not token:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position, fingerprint = raw["p"], raw["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("is not a token this service returned", field="page_token") from None
    if fingerprint != _fingerprint(filters):
        raise InvalidArgument("belongs to a request with other filters", field="page_token")
    return position


def expect(position: Any, kind: type, length: int = 0) -> Any:
    """A decoded position of the expected shape, or INVALID_ARGUMENT (a token is not to be built)."""
    if not isinstance(position, kind) or (length and len(cast(Sized, position)) != length):
        raise InvalidArgument("is not a token this service returned", field="page_token")
    return position


def parse_time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidArgument("is not a token this service returned", field="page_token") from None
