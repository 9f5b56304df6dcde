"""Pickers several pages share: trading mode, bot, symbol and interval."""

from __future__ import annotations

from typing import Any

from tradebot.common.v1 import common_pb2 as common
from tradebot.strategy.v1 import strategy_service_pb2 as sp

from services.dashboard.client import Api, PlatformError

INTERVALS = {
    "1 minute": common.INTERVAL_1_MINUTE,
    "5 minutes": common.INTERVAL_5_MINUTES,
    "15 minutes": common.INTERVAL_15_MINUTES,
    "1 hour": common.INTERVAL_1_HOUR,
    "4 hours": common.INTERVAL_4_HOURS,
    "1 day": common.INTERVAL_1_DAY,
}


def mode(where: Any, key: str) -> int:
    chosen = where.selectbox("Account", ["Paper", "Live"], key=key)
    return int(common.TRADING_MODE_LIVE if chosen == "Live" else common.TRADING_MODE_PAPER)


def bots(api: Api) -> list[Any]:
    """The tenant's bots, or none while bots are not available."""
    try:
        return list(api.strategy.ListBots(sp.ListBotsRequest(page_size=200)).bots)
    except PlatformError:
        return []


def bot(where: Any, api: Api, key: str, allow_all: bool = False) -> str:
    """A bot id ("" for all bots when allowed)."""
    found = bots(api)
    options = ([""] if allow_all else []) + [b.id for b in found]
    names = {b.id: b.name for b in found} | {"": "All bots"}
    if not options:
        return ""
    return str(where.selectbox("Bot", options, format_func=lambda i: names.get(i, i), key=key))


def interval(where: Any, key: str, default: str = "1 hour") -> int:
    chosen = where.selectbox("Interval", list(INTERVALS), index=list(INTERVALS).index(default), key=key)
    return int(INTERVALS[chosen])


def interval_name(value: int) -> str:
    return next((name for name, v in INTERVALS.items() if v == value), common.Interval.Name(value))
