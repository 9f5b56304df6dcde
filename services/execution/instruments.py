"""Instrument filters (qty step, minimums, tick size, leverage) from Bybit's instruments-info, cached.

One fetch serves every tenant trading the symbol: a thousand signals on one candle make one request.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from services.execution.convert import dec
from services.execution.exchange import Exchange
from services.execution.sizing import InstrumentRules


class InstrumentCache:
    def __init__(self, exchange: Exchange, ttl_seconds: float) -> None:
        self.exchange = exchange
        self.ttl = ttl_seconds
        self._rules: dict[tuple[str, str], tuple[float, InstrumentRules]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def get(self, category: str, symbol: str) -> InstrumentRules | None:
        key = (category, symbol)
        hit = self._rules.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self._locks.setdefault(key, asyncio.Lock()):
            hit = self._rules.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            result = await self.exchange.public("get_instruments_info", category=category, symbol=symbol)
            rows = [r for r in result.get("list", []) if r.get("symbol") == symbol]
            if not rows:
                return None
            rules = parse(category, rows[0])
            self._rules[key] = (time.monotonic() + self.ttl, rules)
            return rules


def parse(category: str, row: dict) -> InstrumentRules:
    lot = row.get("lotSizeFilter", {})
    price = row.get("priceFilter", {})
    leverage = row.get("leverageFilter", {})
    return InstrumentRules(
        category=category,
        symbol=str(row["symbol"]),
        status=str(row.get("status", "Trading")),
        qty_step=dec(lot.get("qtyStep") or lot.get("basePrecision"), Decimal("0.001")),
        min_qty=dec(lot.get("minOrderQty")),
        min_notional=dec(lot.get("minNotionalValue") or lot.get("minOrderAmt")),
        tick_size=dec(price.get("tickSize"), Decimal("0.01")),
        max_leverage=dec(leverage.get("maxLeverage"), Decimal(1)),
    )
