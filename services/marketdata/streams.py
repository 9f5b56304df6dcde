"""The open candle streams: demand in, WebSocket topics and sequencers out, and the ingest of each
message to the stream it belongs to.

Changes of demand are applied by one background task (`reconcile`), so RPCs never wait for the
exchange: subscribing can take as long as the exchange takes to answer, and a new stream reports
PENDING, then BACKFILLING, then ACTIVE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from typing import Any

from services.marketdata.demand import Demand
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.feed import MarketFeed
from services.marketdata.gaps import StreamSequencer
from services.marketdata.tickers import TickerBook

log = logging.getLogger("tradebot.marketdata.streams")


class CandleStreams:
    def __init__(self, demand: Demand, tickers: TickerBook, make_sequencer: Any) -> None:
        self.demand = demand
        self.tickers = tickers
        self.feed: MarketFeed | None = None  # set by the wiring (the feed reports reconnects to us)
        self._make_sequencer = make_sequencer
        self.sequencers: dict[StreamKey, StreamSequencer] = {}
        self._by_topic: dict[str, dict[str, StreamSequencer]] = defaultdict(dict)
        self._changed = asyncio.Event()

    # demand -> topics -------------------------------------------------------------------------
    def changed(self) -> None:
        self._changed.set()

    async def reconcile_forever(self, expiry_check_seconds: float = 1.0) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=expiry_check_seconds)
            self._changed.clear()
            await self.demand.expire()
            try:
                await self.reconcile()
            except Exception:
                log.exception("applying subscription changes failed; retrying")
                await asyncio.sleep(1.0)
                self._changed.set()

    async def reconcile(self) -> None:
        assert self.feed is not None
        wanted = self.demand.wanted()
        for key in sorted(wanted - set(self.sequencers), key=str):
            # Subscribe first: a failure leaves the key unregistered, so the next pass tries again.
            # A candle closing before registration is not lost: the first repair fetches it.
            await self.feed.subscribe(key.category, f"tickers.{key.symbol}")
            await self.feed.subscribe(key.category, key.topic)
            sequencer = self._make_sequencer(key)
            sequencer.last_message = time.monotonic()  # a new stream gets its full allowance
            self.sequencers[key] = sequencer
            self._by_topic[key.category][key.topic] = sequencer
            sequencer.repair()  # backfill (new) or resume from the cursor (restart)
            log.info("stream opened", extra={"stream": str(key)})
        for key in sorted(set(self.sequencers) - wanted, key=str):
            sequencer = self.sequencers.pop(key)
            del self._by_topic[key.category][key.topic]
            await sequencer.stop()
            await self.feed.unsubscribe(key.category, key.topic)
            if not any(k.category == key.category and k.symbol == key.symbol for k in self.sequencers):
                await self.feed.unsubscribe(key.category, f"tickers.{key.symbol}")
                self.tickers.forget(key.category, key.symbol)
            log.info("stream closed", extra={"stream": str(key)})

    # feed -> sequencers ---------------------------------------------------------------------
    async def ingest(self, category: str, message: dict[str, Any]) -> None:
        topic = message.get("topic", "")
        sequencer = self._by_topic[category].get(topic)
        if sequencer is not None:
            sequencer.last_message = time.monotonic()
            for row in message["data"]:
                if row["confirm"]:
                    await sequencer.offer(Candle.from_stream(sequencer.key, row))
                else:
                    sequencer.current_row = row
        elif topic.startswith("tickers."):
            self.tickers.on_message(category, message)

    def reconnected(self, category: str) -> None:
        """The category's socket was down for a while: every stream on it checks what it missed."""
        for sequencer in self._by_topic[category].values():
            sequencer.repair()

    def publish_failed(self, candle: Candle) -> None:
        sequencer = self.sequencers.get(candle.key)
        if sequencer is not None:
            sequencer.rewind(candle.start)

    async def stop(self) -> None:
        for sequencer in self.sequencers.values():
            await sequencer.stop()
