"""What the overview shows, fetched in one go: every call in parallel, each part failing on its own.

Kept apart from the page so the benchmark measures exactly the calls the page makes.

Each bot's PnL is split at the start of the UTC day. Today's part is asked for on every refresh (it
reads only today's fills). The part before today is what makes GetPnL expensive for a busy bot: the
service adds up every fill the bot ever had, a few hundred milliseconds for a year of trading. Those
days rarely change, so that part is fetched in the background, kept for the day (refreshed every
few minutes for late corrections), and the page shows the total once it is there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.common.convert import timestamp
from services.dashboard.client import Api, PlatformError

LATEST_ORDERS = 10
LATEST_RISK_EVENTS = 5
# Per-bot PnL costs calls per bot; beyond this the table shows the first bots' PnL only.
PNL_BOTS = 20
# The days before today are fetched again after this long (late fills, corrections).
PAST_PNL_TTL_SECONDS = 600.0
_POOL = ThreadPoolExecutor(16, thread_name_prefix="overview")
# Few threads: the sums before today are slow for the service, and must never crowd out the page's calls.
_PAST_POOL = ThreadPoolExecutor(2, thread_name_prefix="overview-past")


@dataclass
class BotPnl:
    today: str  # net PnL since 00:00 UTC, a decimal string
    total: str | None  # net PnL since the bot's first trade; None until the days before today are in


@dataclass
class Overview:
    parts: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, PlatformError] = field(default_factory=dict)
    bot_pnl: dict[str, BotPnl] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.parts.get(name)


def calls(api: Api, mode: int) -> dict[str, Callable[[], Any]]:
    return {
        "summary": lambda: api.execution.GetAccountSummary(ex.GetAccountSummaryRequest(mode=mode)),
        "bots": lambda: api.strategy.ListBots(sp.ListBotsRequest(mode=mode, page_size=200)),
        "positions": lambda: api.execution.ListPositions(ex.ListPositionsRequest(mode=mode)),
        "orders": lambda: api.execution.ListOrders(ex.ListOrdersRequest(mode=mode, page_size=LATEST_ORDERS)),
        "credentials": lambda: api.tenants.GetExchangeCredentialsStatus(
            tp.GetExchangeCredentialsStatusRequest()
        ),
        "risk": lambda: api.execution.ListRiskEvents(ex.ListRiskEventsRequest(page_size=LATEST_RISK_EVENTS)),
    }


def _run(call: Callable[[], Any]) -> tuple[Any, PlatformError | None]:
    try:
        return call(), None
    except PlatformError as error:
        return None, error


def start_of_day(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def load(api: Api, mode: int, tenant_id: str) -> Overview:
    """Everything in parallel; then each bot's PnL of today, plus its earlier days once known."""
    api.token()  # refresh once here rather than racing in every thread
    overview = Overview()
    futures = {name: _POOL.submit(_run, call) for name, call in calls(api, mode).items()}
    for name, future in futures.items():
        result, error = future.result()
        if error is not None:
            overview.errors[name] = error
        else:
            overview.parts[name] = result
    bots = overview.get("bots")
    if bots is not None and "summary" not in overview.errors:
        day = start_of_day()
        today = {
            bot.id: _POOL.submit(_run, partial(pnl_of_bot, api, bot.id, mode, since=day))
            for bot in list(bots.bots)[:PNL_BOTS]
        }
        for bot_id, future in today.items():
            result, _error = future.result()
            if result is not None:
                past = PAST.get(api, tenant_id, bot_id, mode, day)
                total = None if past is None else str(Decimal(past.net_pnl) + Decimal(result.net_pnl))
                overview.bot_pnl[bot_id] = BotPnl(today=result.net_pnl, total=total)
    return overview


def pnl_of_bot(
    api: Api, bot_id: str, mode: int, since: datetime | None = None, until: datetime | None = None
) -> Any:
    """One bot's GetPnL over [since, until) (open ends: from its first trade, up to now)."""
    request = ex.GetPnLRequest(bot_id=bot_id, mode=mode, equity_interval=common.INTERVAL_1_MONTH)
    if since is not None:
        request.time_range.start.CopyFrom(timestamp(since))
    if until is not None:
        request.time_range.end.CopyFrom(timestamp(until))
    return api.execution.GetPnL(request)


@dataclass
class _Past:
    reply: Any = None  # the latest GetPnL of the days before today
    fetched: float = 0.0
    running: Future[tuple[Any, PlatformError | None]] | None = None


class PastPnl:
    """Each bot's PnL before today, per (tenant, bot, mode, day), fetched off the page's path: `get`
    answers at once with what is known (None at first) and starts a fetch when there is none yet or
    it is older than the TTL. Shared by every session of the dashboard process; keyed by tenant as
    well, so one tenant's figures can never answer another's."""

    def __init__(self, ttl: float = PAST_PNL_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, int, datetime], _Past] = {}

    def get(self, api: Api, tenant_id: str, bot_id: str, mode: int, day: datetime) -> Any:
        key = (tenant_id, bot_id, mode, day)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                # A new day: yesterday's entries are of no use any more.
                self._entries = {k: v for k, v in self._entries.items() if k[3] == day}
                entry = self._entries[key] = _Past()
            if entry.running is not None and entry.running.done():
                reply, error = entry.running.result()
                entry.running = None
                if error is None:
                    entry.reply, entry.fetched = reply, time.monotonic()
            stale = entry.reply is None or time.monotonic() - entry.fetched > self.ttl
            if stale and entry.running is None:
                fetch = partial(pnl_of_bot, api, bot_id, mode, until=day)
                entry.running = _PAST_POOL.submit(_run, fetch)
            return entry.reply


PAST = PastPnl()
