"""Instruments and their trading rules, cached per category and refreshed every few minutes.

The catalog is also the gate for every request naming a symbol: an unknown symbol is refused here,
before any subscription or REST call is spent on it. A refresh that fails keeps the previous list
(rules change rarely; an outage must not make every symbol "unknown").
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tradebot.common.v1 import common_pb2

from services.common.errors import InvalidArgument, TradebotError, Unavailable
from services.common.market import CATEGORY_ENUMS
from services.marketdata.exchange import BybitMarket

log = logging.getLogger("tradebot.marketdata.instruments")

STATUSES = {
    "PreLaunch": common_pb2.INSTRUMENT_STATUS_PRE_LAUNCH,
    "Trading": common_pb2.INSTRUMENT_STATUS_TRADING,
    "Delivering": common_pb2.INSTRUMENT_STATUS_DELIVERING,
    "Closed": common_pb2.INSTRUMENT_STATUS_CLOSED,
}


def instrument_from_bybit(category: str, row: dict[str, Any]) -> common_pb2.Instrument:
    """Normalise one instruments-info row (spot and linear name their filters differently)."""
    lot = row.get("lotSizeFilter", {})
    leverage = row.get("leverageFilter", {})
    spot = category == "spot"
    return common_pb2.Instrument(
        category=CATEGORY_ENUMS[category],
        symbol=row["symbol"],
        base_coin=row.get("baseCoin", ""),
        quote_coin=row.get("quoteCoin", ""),
        settle_coin="" if spot else row.get("settleCoin", ""),
        status=STATUSES.get(row.get("status", ""), common_pb2.INSTRUMENT_STATUS_UNSPECIFIED),
        tick_size=row.get("priceFilter", {}).get("tickSize", ""),
        qty_step=lot.get("basePrecision" if spot else "qtyStep", ""),
        min_qty=lot.get("minOrderQty", ""),
        max_qty=lot.get("maxOrderQty", ""),
        max_market_qty=lot.get("maxOrderQty" if spot else "maxMktOrderQty", ""),
        min_notional=lot.get("minOrderAmt" if spot else "minNotionalValue", ""),
        min_leverage="" if spot else leverage.get("minLeverage", ""),
        max_leverage="" if spot else leverage.get("maxLeverage", ""),
        leverage_step="" if spot else leverage.get("leverageStep", ""),
        funding_interval_minutes=0 if spot else int(row.get("fundingInterval", 0) or 0),
    )


class InstrumentCatalog:
    def __init__(self, market: BybitMarket, refresh_seconds: float) -> None:
        self._market = market
        self._refresh_seconds = refresh_seconds
        self._by_category: dict[str, dict[str, common_pb2.Instrument]] = {}
        self._fetched_at: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def instruments(self, category: str) -> dict[str, common_pb2.Instrument]:
        """Symbol → instrument, fetched on first use and again once the cache is older than the refresh
        period. Raises Unavailable only when nothing was ever fetched."""
        fresh = time.monotonic() - self._fetched_at.get(category, -1e18) < self._refresh_seconds
        if fresh:
            return self._by_category[category]
        async with self._locks.setdefault(category, asyncio.Lock()):
            if time.monotonic() - self._fetched_at.get(category, -1e18) < self._refresh_seconds:
                return self._by_category[category]
            try:
                rows = await self._market.instruments(category)
            except TradebotError as error:
                if category in self._by_category:
                    log.warning(
                        "instrument refresh failed; keeping the cached list", extra={"error": str(error)}
                    )
                    return self._by_category[category]
                raise Unavailable(f"cannot load {category} instruments from Bybit: {error}") from None
            self._by_category[category] = {
                row["symbol"]: instrument_from_bybit(category, row)
                for row in sorted(rows, key=lambda r: r["symbol"])
            }
            self._fetched_at[category] = time.monotonic()
            return self._by_category[category]

    async def require(
        self, category: str, symbol: str, *, missing: type[TradebotError] = InvalidArgument
    ) -> None:
        """Refuse a symbol Bybit does not list in `category` (InvalidArgument, or NotFound on request)."""
        if symbol not in await self.instruments(category):
            raise missing(f"unknown symbol {symbol} in category {category}", field="symbol")
