"""Closed candles and throttled tickers onto JetStream.

Candles are published without waiting for each acknowledgement (JetStream's asynchronous publish):
waiting would cap a stream at one round trip per candle and the whole service at a few thousand
candles a second. Order is still kept: one connection, messages written in call order, and the server
stores them in that order. The acknowledgement is handled when it arrives: success advances the
stream's stored cursor, failure sends the stream back to repair from that candle (the `Nats-Msg-Id`
makes re-sending whatever did get stored harmless).
See docs/decisions/0030-marketdata-exactly-once-candles.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.js.api import PubAck
from tradebot.marketdata.v1 import events_pb2

from services.common.bus import Bus
from services.marketdata.domain import Candle, StreamKey
from services.marketdata.metrics import FeedMetrics

log = logging.getLogger("tradebot.marketdata.publisher")

STREAM = "MARKETDATA"
LIVE = {"source": "live"}
BACKFILLED = {"source": "backfilled"}


def ticker_subject(category: str, symbol: str) -> str:
    return f"md.ticker.bybit.{category}.{symbol}"


class CandlePublisher:
    def __init__(
        self,
        bus: Bus,
        metrics: FeedMetrics,
        on_acked: Callable[[Candle], None],
        on_failed: Callable[[Candle], None],
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._on_acked = on_acked
        self._on_failed = on_failed
        self._pending: set[asyncio.Future[PubAck]] = set()

    async def publish(self, candle: Candle, backfilled: bool = False) -> None:
        """Send one closed candle; returns once it is written to the connection, before its ack."""
        now = time.time()
        event = candle.event(int(now * 1000), backfilled)
        future = await self._bus.publish_pipelined(candle.key.subject, event, event.event_id)
        self._pending.add(future)
        future.add_done_callback(lambda f: self._settled(f, candle))
        self._metrics.candle_lag.record(now - (candle.end + 1) / 1000, BACKFILLED if backfilled else LIVE)

    def _settled(self, future: asyncio.Future[PubAck], candle: Candle) -> None:
        self._pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            error = "cancelled" if future.cancelled() else repr(future.exception())
            log.warning("candle publish failed; repairing", extra={"stream": str(candle.key), "error": error})
            self._on_failed(candle)
            return
        self._metrics.published[candle.key.category] += 1
        self._on_acked(candle)

    async def settle(self) -> None:
        """Wait for the acknowledgements still outstanding (graceful shutdown, tests, benchmarks)."""
        if self._pending:
            await asyncio.wait(list(self._pending))

    async def last_published_start(self, key: StreamKey) -> int | None:
        """Start of the newest candle on the stream's subject in JetStream, None if there is none."""
        try:
            raw = await self._bus.js.get_last_msg(STREAM, key.subject)
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
            return None
        event = events_pb2.CandleClosed.FromString(raw.data or b"")
        return int(event.candle.start.ToMilliseconds())

    async def publish_ticker(self, ticker: events_pb2.Ticker, category: str) -> None:
        msg_id = f"{category}.{ticker.symbol}.{ticker.time_ms}"
        await self._bus.publish(ticker_subject(category, ticker.symbol), ticker, msg_id)
