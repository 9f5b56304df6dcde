"""Exactly once, in order: each stream's next expected candle, and repair of whatever was missed.

A `StreamSequencer` holds the start of the next candle its stream must publish. A live closed candle
with that start is published at once (the hot path: no task, no queue). One that is older was already
published and is dropped. One that is newer means candles were missed: the sequencer holds it back,
fetches the missing ones over REST, publishes them in order, then the held-back ones. The same repair
runs after a reconnect (the socket may have missed a close), after a failed publish, and when a
stream starts: first from the cursor it left off at (restart), or, for a stream never seen before,
after a backfill of its history (which is stored, not published).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import Enum

from services.common.errors import TradebotError
from services.common.market import next_start
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.exchange import BybitMarket
from services.marketdata.history import Backfill, HistoryWriter
from services.marketdata.metrics import FeedMetrics

log = logging.getLogger("tradebot.marketdata.gaps")

Publish = Callable[[Candle, bool], Awaitable[None]]
LastPublished = Callable[[StreamKey], Awaitable[int | None]]


class State(Enum):
    PENDING = "pending"
    BACKFILLING = "backfilling"
    ACTIVE = "active"
    FAILED = "failed"


class StreamSequencer:
    def __init__(
        self,
        key: StreamKey,
        *,
        market: BybitMarket,
        history: HistoryWriter,
        backfill: Backfill,
        publish: Publish,
        last_published: LastPublished,
        metrics: FeedMetrics,
    ) -> None:
        self.key = key
        self.state = State.PENDING
        self.failure = ""
        self.next_start: int | None = None  # None until the stream knows where it stands
        self.last_published: int | None = None
        self.current_row: dict[str, object] | None = None  # newest in-progress kline, as received
        self.last_message = 0.0  # monotonic time of the newest kline message (liveness)
        self._market = market
        self._history = history
        self._backfill = backfill
        self._publish = publish
        self._last_in_nats = last_published
        self._metrics = metrics
        self._held: list[Candle] = []
        self._repair: asyncio.Task[None] | None = None
        self._attrs = {"category": key.category}

    # hot path -----------------------------------------------------------------------------------
    async def offer(self, candle: Candle) -> None:
        """A closed candle received live."""
        expected = self.next_start
        if self._repair is not None:
            self._held.append(candle)
            return
        if expected is not None and candle.start < expected:
            return  # already published (e.g. fetched by a repair before the socket delivered it)
        if expected is None or candle.start > expected:
            self._held.append(candle)
            self.repair()
            return
        await self._emit(candle, backfilled=False)

    async def _emit(self, candle: Candle, backfilled: bool) -> None:
        self.next_start = next_start(candle.start, self.key.interval)
        self.last_published = candle.start
        self._history.add(candle)
        await self._publish(candle, backfilled)

    # repair -------------------------------------------------------------------------------------
    def repair(self) -> None:
        """Catch up with the exchange in the background (idempotent while a repair runs)."""
        if self._repair is None and self.state is not State.FAILED:
            self._repair = asyncio.create_task(self._run_repair(), name=f"repair:{self.key}")

    def rewind(self, start: int) -> None:
        """A publish of `start` failed: publish again from there (duplicates are dropped by id)."""
        if self.next_start is not None and start < self.next_start:
            self.next_start = start
        self.repair()

    async def stop(self) -> None:
        if self._repair is not None:
            self._repair.cancel()
            await asyncio.gather(self._repair, return_exceptions=True)

    async def _run_repair(self) -> None:
        delay = 0.5
        try:
            while True:
                try:
                    await self._catch_up()
                    return
                except TradebotError as error:
                    log.warning(
                        "gap repair failed; retrying", extra={"stream": str(self.key), "error": str(error)}
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        finally:
            self._repair = None

    async def _catch_up(self) -> None:
        if self.next_start is None:
            await self._initialise()
        if self.next_start is not None:
            await self._fill(self.next_start, None)
        self.state = State.ACTIVE
        # Candles received while repairing, in order. No await between the last emptiness check and
        # clearing the task (the `finally` above), so nothing can be held back and then forgotten.
        while self._held:
            held, self._held = sorted(self._held, key=lambda c: c.start), []
            for candle in held:
                if self.next_start is None:
                    self.next_start = candle.start  # a brand-new instrument with no history yet
                if candle.start < self.next_start:
                    continue
                if candle.start > self.next_start:
                    await self._fill(self.next_start, candle.start)
                    if candle.start > self.next_start:
                        log.error(
                            "Bybit has no candles for a gap; skipping it",
                            extra={"stream": str(self.key), "from": self.next_start, "to": candle.start},
                        )
                await self._emit(candle, backfilled=False)

    async def _initialise(self) -> None:
        """Where this stream stands: its cursor if it was published before, else after a backfill."""
        self.state = State.BACKFILLING
        stored = await self._history.store.cursor(self.key)
        in_nats = await self._last_in_nats(self.key)
        known = [s for s in (stored, in_nats) if s is not None]
        if known:
            self.last_published = max(known)
            self.next_start = next_start(self.last_published, self.key.interval)
            return
        newest = await self._backfill.run(self.key)
        if newest is not None:
            self.next_start = next_start(newest, self.key.interval)

    async def _fill(self, since: int, until: int | None) -> None:
        """Publish the closed candles of [since, until) the exchange has, in order."""
        missed = await self._market.closed_candles(self.key, since, until)
        for candle in missed:
            if self.next_start is not None and candle.start < self.next_start:
                continue
            await self._emit(candle, backfilled=True)
        if missed:
            self._metrics.gaps_repaired.add(len(missed), self._attrs)
            log.info(
                "gap repaired",
                extra={"stream": str(self.key), "candles": len(missed), "from": since, "to": self.next_start},
            )
