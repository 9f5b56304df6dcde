"""Liveness of the feed: a stream silent for longer than its interval allows is stale.

Bybit pushes every kline topic at least once a minute (more often while trading), so silence longer
than the stream's interval, capped at `stale_seconds`, plus half of that again as slack, means the
socket no longer delivers (the "reconnects that stop delivering" trap). Then the gRPC health turns
NOT_SERVING (load balancers and dashboards see it) and the category's socket is rebuilt, at most once
per allowance; health turns SERVING again once every stream is heard from. No streams, no staleness:
a service nobody needs yet is healthy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from services.common.market import interval_ms
from services.marketdata.feed import MarketFeed
from services.marketdata.gaps import StreamSequencer
from services.marketdata.metrics import FeedMetrics
from services.marketdata.streams import CandleStreams

log = logging.getLogger("tradebot.marketdata.liveness")

SLACK = 1.5


class Liveness:
    def __init__(
        self,
        streams: CandleStreams,
        feed: MarketFeed,
        set_serving: Callable[[bool], Awaitable[None]],
        metrics: FeedMetrics,
        stale_seconds: float,
    ) -> None:
        self._streams = streams
        self._feed = feed
        self._set_serving = set_serving
        self._metrics = metrics
        self._stale_seconds = stale_seconds
        self.serving = True
        self.stale: set[str] = set()
        self._reconnected_at: dict[str, float] = {}
        self._reconnects: set[asyncio.Task[None]] = set()

    def allowance(self, sequencer: StreamSequencer) -> float:
        return min(interval_ms(sequencer.key.interval) / 1000, self._stale_seconds) * SLACK

    async def run(self, period: float | None = None) -> None:
        period = period or max(min(self._stale_seconds / 4, 5.0), 0.05)
        while True:
            await asyncio.sleep(period)
            await self.check()

    async def check(self) -> None:
        now = time.monotonic()
        stale = {
            sequencer.key: self.allowance(sequencer)
            for sequencer in self._streams.sequencers.values()
            if now - sequencer.last_message > self.allowance(sequencer)
        }
        names = {str(k) for k in stale}
        if names != self.stale:
            self._metrics.stale_streams.add(len(names) - len(self.stale))
            if names - self.stale:
                log.warning("streams went silent", extra={"streams": sorted(names - self.stale)})
            self.stale = names
        serving = not stale
        if serving != self.serving:
            self.serving = serving
            await self._set_serving(serving)
            log.warning("feed health changed", extra={"serving": serving})
        for key, allowance in stale.items():
            if now - self._reconnected_at.get(key.category, -1e18) > allowance:
                self._reconnected_at[key.category] = now
                task = asyncio.create_task(
                    self._feed.reconnect(key.category), name=f"reconnect:{key.category}"
                )
                self._reconnects.add(task)
                task.add_done_callback(self._reconnects.discard)
