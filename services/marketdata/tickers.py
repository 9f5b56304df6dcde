"""Latest ticker of each subscribed instrument, and its throttled publication for the dashboard.

Bybit pushes linear tickers as a snapshot then deltas every 100 ms; pybit merges the deltas and hands
over the whole row. Only the newest row per instrument is kept, and a flusher publishes the changed
ones at most once per period: the dashboard needs a glance, not every tick.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tradebot.marketdata.v1 import events_pb2

from services.common.market import CATEGORY_ENUMS
from services.marketdata.domain import timestamp
from services.marketdata.publisher import CandlePublisher

log = logging.getLogger("tradebot.marketdata.tickers")

FIELDS = {
    "last_price": "lastPrice",
    "mark_price": "markPrice",
    "index_price": "indexPrice",
    "bid_price": "bid1Price",
    "bid_size": "bid1Size",
    "ask_price": "ask1Price",
    "ask_size": "ask1Size",
    "prev_price_24h": "prevPrice24h",
    "price_24h_pcnt": "price24hPcnt",
    "high_price_24h": "highPrice24h",
    "low_price_24h": "lowPrice24h",
    "volume_24h": "volume24h",
    "turnover_24h": "turnover24h",
    "funding_rate": "fundingRate",
    "open_interest": "openInterest",
}


def ticker_from_bybit(category: str, row: dict[str, Any], time_ms: int) -> events_pb2.Ticker:
    """A ticker from a `tickers` row (stream or REST); Bybit's strings pass through unchanged."""
    ticker = events_pb2.Ticker(
        category=CATEGORY_ENUMS[category],
        symbol=str(row.get("symbol", "")),
        time_ms=time_ms,
        **{ours: str(row.get(theirs) or "") for ours, theirs in FIELDS.items()},
    )
    next_funding = int(row.get("nextFundingTime") or 0)
    if category != "spot" and next_funding:
        ticker.next_funding_time.CopyFrom(timestamp(next_funding))
    return ticker


class TickerBook:
    def __init__(self, publisher: CandlePublisher, period_seconds: float) -> None:
        self._publisher = publisher
        self._period = period_seconds
        self._raw: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
        self._changed: set[tuple[str, str]] = set()

    def on_message(self, category: str, message: dict[str, Any]) -> None:
        """A `tickers` message: keep the raw row; it is converted only when read or published."""
        data = message.get("data") or {}
        key = (category, str(data.get("symbol", "")))
        self._raw[key] = (data, int(message.get("ts") or 0))
        self._changed.add(key)

    def get(self, category: str, symbol: str) -> events_pb2.Ticker | None:
        raw = self._raw.get((category, symbol))
        return None if raw is None else ticker_from_bybit(category, *raw)

    def forget(self, category: str, symbol: str) -> None:
        self._raw.pop((category, symbol), None)
        self._changed.discard((category, symbol))

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            changed, self._changed = self._changed, set()
            for category, symbol in sorted(changed):
                ticker = self.get(category, symbol)
                if ticker is None:
                    continue
                try:
                    await self._publisher.publish_ticker(ticker, category)
                except Exception:
                    log.exception("ticker publish failed", extra={"symbol": symbol})
