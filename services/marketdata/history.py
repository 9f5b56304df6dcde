"""Candle history: live candles written in batches off the hot path, and the first backfill of a stream.

The writer buffers closed candles and published cursors and upserts them every `flush_seconds`: one
round trip per batch instead of one per candle keeps PostgreSQL out of the publish latency, and a
crash loses nothing that matters (the cursor is also recoverable from JetStream, and candles are
re-fetched by gap repair or by GetCandles).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.common.market import interval_ms
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.exchange import BybitMarket
from services.marketdata.metrics import FeedMetrics
from services.marketdata.store import Store

log = logging.getLogger("tradebot.marketdata.history")


class HistoryWriter:
    def __init__(self, store: Store, flush_seconds: float = 0.2) -> None:
        self.store = store
        self._flush_seconds = flush_seconds
        self._candles: list[Candle] = []
        self._cursors: dict[StreamKey, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, candle: Candle) -> None:
        self._candles.append(candle)

    def published(self, candle: Candle) -> None:
        """JetStream acknowledged `candle`: its start becomes the stream's cursor at the next flush."""
        held = self._cursors.get(candle.key)
        if held is None or candle.start > held:
            self._cursors[candle.key] = candle.start

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="history-writer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception:
                # The database being away must not stop publishing; the batch is retried next time.
                log.exception("history flush failed; will retry")

    async def flush(self) -> None:
        candles, cursors = self._candles, self._cursors
        self._candles, self._cursors = [], {}
        try:
            # Later versions of a candle win: keep the last one per (stream, start).
            await self.store.upsert_candles(list({(c.key, c.start): c for c in candles}.values()))
            await self.store.advance_cursors(cursors)
        except Exception:
            self._candles = candles + self._candles
            for key, start in cursors.items():
                if start > self._cursors.get(key, -1):
                    self._cursors[key] = start
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.flush()


class Backfill:
    """Stores `depth` candles of a new stream's history over REST, newest page first."""

    def __init__(self, market: BybitMarket, store: Store, metrics: FeedMetrics, depth: int) -> None:
        self._market = market
        self._store = store
        self._metrics = metrics
        self._depth = depth

    async def run(self, key: StreamKey) -> int | None:
        """Backfill `key`; returns the start of its newest closed candle (None: no history at all)."""
        name = str(key)
        self._metrics.backfill_progress[name] = 0.0
        _, newest_stored = await self._store.bounds(key)
        # A stream stored before (history kept, cursor lost) only needs what is newer than its data.
        since = (newest_stored or 0) if newest_stored is not None else 0
        newest: int | None = None
        stored = 0
        async for page in self._market.pages_backwards(key, since, None):
            if newest is None:
                newest = page[-1].start
                since = max(since, newest - (self._depth - 1) * interval_ms(key.interval))
            kept = [c for c in page if c.start >= since]
            await self._store.upsert_candles(kept)
            stored += len(kept)
            self._metrics.backfill_progress[name] = min(stored / self._depth, 1.0)
            log.info("backfill progress", extra={"stream": name, "stored": stored, "depth": self._depth})
            if stored >= self._depth or not kept:
                break
        self._metrics.backfill_progress[name] = 1.0
        return newest if newest is not None else newest_stored
