"""What the overview shows, fetched in one go: every call in parallel, each part failing on its own.

Kept apart from the page so the benchmark measures exactly the calls the page makes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from tradebot.common.v1 import common_pb2 as common
from tradebot.execution.v1 import execution_service_pb2 as ex
from tradebot.strategy.v1 import strategy_service_pb2 as sp
from tradebot.tenants.v1 import tenants_service_pb2 as tp

from services.dashboard.client import Api, PlatformError

LATEST_ORDERS = 10
LATEST_RISK_EVENTS = 5
# Per-bot PnL costs one call per bot; beyond this the table shows the first bots' PnL only.
PNL_BOTS = 20
_POOL = ThreadPoolExecutor(16, thread_name_prefix="overview")


@dataclass
class Overview:
    parts: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, PlatformError] = field(default_factory=dict)
    bot_pnl: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.parts.get(name)


def _calls(api: Api, mode: int) -> dict[str, Callable[[], Any]]:
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


def load(api: Api, mode: int) -> Overview:
    """Everything in parallel; then one GetPnL per bot (total, and today from its last day)."""
    api.token()  # refresh once here rather than racing in every thread
    overview = Overview()
    futures = {name: _POOL.submit(_run, call) for name, call in _calls(api, mode).items()}
    for name, future in futures.items():
        result, error = future.result()
        if error is not None:
            overview.errors[name] = error
        else:
            overview.parts[name] = result
    bots = overview.get("bots")
    if bots is not None and "summary" not in overview.errors:
        pnl = {
            bot.id: _POOL.submit(_run, partial(_bot_pnl, api, bot.id, mode))
            for bot in list(bots.bots)[:PNL_BOTS]
        }
        for bot_id, future in pnl.items():
            result, _error = future.result()
            if result is not None:
                overview.bot_pnl[bot_id] = result
    return overview


def _bot_pnl(api: Api, bot_id: str, mode: int) -> Any:
    # Monthly equity points: the overview needs the totals, not the curve.
    return api.execution.GetPnL(
        ex.GetPnLRequest(bot_id=bot_id, mode=mode, equity_interval=common.INTERVAL_1_MONTH)
    )


def today_pnl(reply: Any) -> str:
    """Net PnL of the current UTC day from a GetPnL reply ("" when nothing happened today)."""
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return next((day.net_pnl for day in reply.daily if day.date == today), "0")
