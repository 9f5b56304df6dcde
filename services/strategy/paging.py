"""Page sizes and opaque page tokens (the common.proto pagination rules)."""

from __future__ import annotations

import base64
import json
from typing import Any

from services.common.errors import InvalidArgument


def page_size(requested: int, default: int, maximum: int) -> int:
    if requested < 0:
        raise InvalidArgument("must not be negative", field="page_size")
    return min(requested or default, maximum)


def make_token(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def read_token(token: str) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise InvalidArgument("is not a token this service gave out", field="page_token") from None
