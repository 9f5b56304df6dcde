"""Bybit's public REST endpoints the service needs (klines, instruments, tickers), through pybit.

pybit is blocking, so every call runs in a worker thread; a semaphore keeps at most a few in flight,
which keeps a burst of backfills far below Bybit's per-IP limit (600 requests / 5 s). Transient
failures (network, 10006 rate limit, 10016 server error) are retried with backoff; what is left is
reported as `Unavailable`, which callers retry later or pass on to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError

from services.common.bybit import BybitVenue
from services.common.errors import InvalidArgument, Unavailable
from services.marketdata.domain import Candle, StreamKey

log = logging.getLogger("tradebot.marketdata.exchange")

KLINE_PAGE = 1000  # Bybit's maximum `limit` for /v5/market/kline
TRANSIENT_CODES = {10006, 10016}


class BybitMarket:
    def __init__(self, venue: BybitVenue, *, concurrency: int = 4, attempts: int = 3) -> None:
        # max_retries=1 means "one attempt" in pybit (0 would send nothing); retrying is ours to decide.
        self._session = venue.http(timeout=10, max_retries=1)
        self._slots = asyncio.Semaphore(concurrency)
        self._attempts = attempts

    async def _call(self, what: str, fn: Callable[..., dict[str, Any]], **params: Any) -> dict[str, Any]:
        """The whole reply envelope ({retCode, result, time, ...}) of one successful call."""
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._slots:
                    reply = await asyncio.to_thread(fn, **params)
                return dict(reply)
            except InvalidRequestError as error:
                if error.status_code not in TRANSIENT_CODES:
                    raise InvalidArgument(f"Bybit refused {what}: {error.message}") from None
                reason = f"Bybit error {error.status_code}: {error.message}"
            except (FailedRequestError, requests.RequestException, OSError) as error:
                reason = str(error).splitlines()[0]
            if attempt < self._attempts:
                log.warning("bybit call failed; retrying", extra={"call": what, "reason": reason})
                await asyncio.sleep(delay)
                delay *= 2
        raise Unavailable(f"Bybit is unreachable for {what}: {reason}; retry later")

    async def kline_page(
        self, key: StreamKey, *, start: int | None, end: int | None, limit: int = KLINE_PAGE
    ) -> list[list[str]]:
        """One page (≤ 1000) of raw kline rows, newest first, as Bybit returns them."""
        params: dict[str, Any] = {
            "category": key.category,
            "symbol": key.symbol,
            "interval": key.interval,
            "limit": limit,
        }
        if start:  # 0 means "from the earliest": Bybit then pages back from `end`
            params["start"] = start
        if end is not None:
            params["end"] = end
        reply = await self._call(f"klines of {key}", self._session.get_kline, **params)
        return list(reply["result"].get("list", []))

    async def pages_backwards(
        self, key: StreamKey, since: int, until: int | None
    ) -> AsyncIterator[list[Candle]]:
        """Closed candles with `since` ≤ start < `until` (`until` None: up to now), a page of up to
        1,000 at a time, newest page first, each page ascending.

        When reading up to now the newest row is the candle in progress and is left out: a candle is
        only known to be closed once a newer one exists.
        """
        end = None if until is None else until - 1
        first = True
        while True:
            page = await self.kline_page(key, start=since, end=end)
            full = len(page) >= KLINE_PAGE
            oldest = int(page[-1][0]) if page else since
            if first and until is None:
                page = page[1:]
            first = False
            kept = [r for r in page if int(r[0]) >= since and (until is None or int(r[0]) < until)]
            if kept:
                yield [Candle.from_rest(key, r, True) for r in reversed(kept)]
            if not full or oldest <= since:
                return
            end = oldest - 1

    async def closed_candles(self, key: StreamKey, since: int, until: int | None) -> list[Candle]:
        """All closed candles of [since, until) ascending (see `pages_backwards`)."""
        pages = [page async for page in self.pages_backwards(key, since, until)]
        by_start = {c.start: c for page in pages for c in page}
        return [by_start[s] for s in sorted(by_start)]

    async def instruments(self, category: str) -> list[dict[str, Any]]:
        """Every instrument of a category (instruments-info, following `nextPageCursor`)."""
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params: dict[str, Any] = {"category": category, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            reply = await self._call(f"{category} instruments", self._session.get_instruments_info, **params)
            result = reply["result"]
            items.extend(result.get("list", []))
            cursor = str(result.get("nextPageCursor") or "")
            if not cursor:
                return items

    async def ticker(self, category: str, symbol: str) -> tuple[dict[str, Any], int]:
        """The REST ticker row of one instrument and the reply's exchange time (ms)."""
        reply = await self._call(
            f"ticker of {category} {symbol}", self._session.get_tickers, category=category, symbol=symbol
        )
        rows = list(reply["result"].get("list", []))
        if not rows:
            raise InvalidArgument(f"Bybit has no ticker for {category} {symbol}")
        return dict(rows[0]), int(reply.get("time", 0) or 0)
