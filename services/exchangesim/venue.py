"""Everything a request handler may touch, bundled once by the app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.exchangesim import errors
from services.exchangesim.accounts import Account, Accounts, ApiKey
from services.exchangesim.auth import ServerClock
from services.exchangesim.faults import Faults
from services.exchangesim.instruments import Catalog
from services.exchangesim.market import Market
from services.exchangesim.matching import Engine
from services.exchangesim.ratelimit import RateLimiter


@dataclass
class Venue:
    catalog: Catalog
    market: Market
    engine: Engine
    accounts: Accounts
    server_clock: ServerClock
    limiter: RateLimiter
    faults: Faults


@dataclass
class Call:
    """One REST call: its parameters and, for private endpoints, the verified key and account."""

    params: dict[str, Any]
    key: ApiKey | None = None
    account_: Account | None = field(default=None)

    @property
    def account(self) -> Account:
        assert self.account_ is not None
        return self.account_


def int_param(params: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise errors.params(f"params error: {name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise errors.params(f"params error: {name} must lie between {low} and {high}, got {value}")
    return value


def page(items: list[Any], params: dict[str, Any], default: int, maximum: int) -> tuple[list[Any], str]:
    """One page of `items` and the next cursor ("" on the last page)."""
    limit = int_param(params, "limit", default, 1, maximum)
    cursor = str(params.get("cursor") or "")
    try:
        offset = int(cursor) if cursor else 0
    except ValueError:
        raise errors.params(
            f"params error: cursor {cursor!r} is not a cursor this endpoint returned"
        ) from None
    chunk = items[offset : offset + limit]
    nxt = str(offset + limit) if offset + limit < len(items) else ""
    return chunk, nxt
