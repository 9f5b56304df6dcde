"""Checks of request fields shared by several handlers; each error names its field."""

from __future__ import annotations

import re
import uuid

from services.common.errors import InvalidArgument

EMAIL = re.compile(r"^[^@\s\x00-\x1f]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$")


def email(value: str, field: str = "email") -> str:
    cleaned = value.strip().lower()
    if not cleaned:
        raise InvalidArgument("is required", field=field)
    if len(cleaned) > 254 or not EMAIL.match(cleaned):
        raise InvalidArgument("is not an email address", field=field)
    return cleaned


def text(value: str, field: str, *, maximum: int, required: bool = True) -> str:
    cleaned = value.strip()
    if required and not cleaned:
        raise InvalidArgument("is required", field=field)
    if len(cleaned) > maximum:
        raise InvalidArgument(f"must be at most {maximum} characters", field=field)
    if any(ord(ch) < 32 for ch in cleaned):
        raise InvalidArgument("must not contain control characters", field=field)
    return cleaned


def object_id(value: str, field: str) -> str:
    """An id we issued (a UUID); anything else cannot name a row, so it fails early and cheaply."""
    if not value:
        raise InvalidArgument("is required", field=field)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument("is not an id this service issued", field=field) from None
