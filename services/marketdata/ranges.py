"""Pages of candle history for GetCandles and StreamCandles' replay, completed from Bybit on demand.

A page covers at most `page_size` candle starts. When storage holds fewer than the exchange can have
for that span (a stream nobody subscribed to, history older than the backfill), the span is fetched
over REST and stored first, so a range is complete unless the exchange itself has no data for it.
Only closed candles are stored: the newest row of a fetch is kept only if the exchange already has
a newer candle (in the simulator the market clock is not the wall clock, so time alone cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.common.market import interval_ms, next_start
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.exchange import BybitMarket
from services.marketdata.store import Store


@dataclass(frozen=True)
class Page:
    candles: list[Candle]
    next_from: int | None  # start to continue from; None on the last page


def expected_starts(interval: str, since: int, until: int) -> int:
    """How many candle starts fall in [since, until) (an upper bound for months)."""
    if until <= since:
        return 0
    if interval == "M":
        count, start = 0, since
        while start < until:
            count, start = count + 1, next_start(start, interval)
        return count
    size = interval_ms(interval)
    return (until - 1) // size - (since + size - 1) // size + 1


class CandleRanges:
    def __init__(self, store: Store, market: BybitMarket) -> None:
        self._store = store
        self._market = market

    async def page(
        self, key: StreamKey, since: int, until: int, size: int, *, newest_closed: int | None = None
    ) -> Page:
        """Closed candles with since ≤ start < until, at most `size`, ascending.

        `newest_closed` is the newest candle start known to be closed (a live stream's last published
        candle); nothing newer is fetched from the exchange.
        """
        span_end = min(until, since + size * interval_ms(key.interval))
        if key.interval == "M":
            span_end = since
            for _ in range(size):
                if span_end >= until:
                    break
                span_end = next_start(span_end, key.interval)
            span_end = min(span_end, until)
        fetch_end = (
            span_end if newest_closed is None else min(span_end, next_start(newest_closed, key.interval))
        )
        stored = await self._store.candles(key, since, span_end, size)
        if len(stored) < expected_starts(key.interval, since, fetch_end):
            await self._fill(key, since, fetch_end)
            stored = await self._store.candles(key, since, span_end, size)
        if len(stored) >= size:
            following = next_start(stored[-1].start, key.interval)
            return Page(stored, following if following < until else None)
        return Page(stored, span_end if span_end < until else None)

    async def _fill(self, key: StreamKey, since: int, until: int) -> None:
        fetched = await self._market.closed_candles(key, since, until)
        if fetched and not await self._has_newer(key, fetched[-1].start):
            fetched = fetched[:-1]  # still in progress
        await self._store.upsert_candles(fetched)

    async def _has_newer(self, key: StreamKey, start: int) -> bool:
        return bool(
            await self._market.kline_page(key, start=next_start(start, key.interval), end=None, limit=1)
        )
