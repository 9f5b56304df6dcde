"""Closed candles and throttled tickers onto JetStream.

Candles are pipelined through the bus's `Pipeline` (services/common/bus.py): written in call order
without waiting for each acknowledgement, which would cap a stream at one round trip per candle.
This module keeps what is about candles: the event, the lag metric, and what an acknowledgement
means for the stream. Success advances the stream's stored cursor; an error (or none within
`ack_timeout_seconds`: a connection lost with the candle in its buffer) sends the stream back to
repair from that candle; the `Nats-Msg-Id` makes re-sending whatever did get stored harmless. See
docs/decisions/0030-marketdata-exactly-once-candles.md and 0021-marketdata-ingest-fast-path.md.

Candle events carry no trace context: they start at the exchange, not inside a traced request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
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
        *,
        ack_timeout_seconds: float = 15.0,
    ) -> None:
        self._bus = bus
        self._metrics = metrics
        self._on_acked = on_acked
        self._on_failed = on_failed
        self._pipeline = bus.pipeline(self._stored, self._failed, ack_timeout_seconds=ack_timeout_seconds)
        self._lag: dict[bool, float | None] = {True: None, False: None}  # worst of this loop turn
        self._lag_due = False

    async def publish(self, candle: Candle, backfilled: bool = False) -> None:
        """Send one closed candle; returns once it is written to the connection, before its ack."""
        now = time.time()
        event = candle.event(int(now * 1000), backfilled)
        await self._pipeline.publish(candle.key.subject, event.SerializeToString(), event.event_id, candle)
        self._note_lag(now - (candle.end + 1) / 1000, backfilled)

    def _note_lag(self, lag: float, backfilled: bool) -> None:
        # An OTel histogram observation costs ~8 µs: at tens of thousands of candles a second that
        # alone would be a sixth of the core. One observation per loop turn and source (its worst).
        worst = self._lag[backfilled]
        self._lag[backfilled] = lag if worst is None else max(worst, lag)
        if not self._lag_due:
            self._lag_due = True
            asyncio.get_running_loop().call_soon(self._record_lag)

    def _record_lag(self) -> None:
        self._lag_due = False
        for backfilled, lag in self._lag.items():
            if lag is not None:
                self._metrics.candle_lag.record(lag, BACKFILLED if backfilled else LIVE)
                self._lag[backfilled] = None

    def _stored(self, candle: Candle, reply: bytes) -> None:
        self._metrics.published[candle.key.category] += 1
        self._on_acked(candle)

    def _failed(self, candle: Candle, error: Exception) -> None:
        log.warning(
            "candle publish failed; repairing", extra={"stream": str(candle.key), "error": str(error)}
        )
        self._on_failed(candle)

    @property
    def unacknowledged(self) -> int:
        return self._pipeline.unacknowledged

    async def settle(self, within: float = 10.0) -> None:
        """Wait (up to `within` seconds) for the acknowledgements still outstanding (graceful
        shutdown, tests, benchmarks)."""
        await self._pipeline.settle(within)

    async def close(self) -> None:
        await self._pipeline.close()

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
