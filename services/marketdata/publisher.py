"""Closed candles and throttled tickers onto JetStream.

Candles are pipelined: each is written to the connection with a reply subject of this publisher's
own (`<inbox>.<n>`), and JetStream's acknowledgements arrive there in the background. Waiting for
each acknowledgement would cap a stream at one round trip per candle. Order is still kept: one
connection, messages written in call order, and the server stores them in that order. An
acknowledgement is settled when it arrives: success advances the stream's stored cursor, an error
(or none within `ack_timeout_seconds`: a connection lost with the candle in its buffer) sends the
stream back to repair from that candle; the `Nats-Msg-Id` makes re-sending whatever did get stored
harmless. See docs/decisions/0030-marketdata-exactly-once-candles.md and, for why this is not
`Bus.publish_pipelined` (nats-py's `publish_async`: a random token, a semaphore, a future and two
callbacks per message, over half of the publishing cost), 0021-marketdata-ingest-fast-path.md.

Candle events carry no trace context: they start at the exchange, not inside a traced request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
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


def stored(ack: bytes) -> bool:
    """A JetStream publish acknowledgement that says stored (or already stored: a duplicate).

    `{"stream":…,"seq":…}` on success; an error carries `"error"`; a status-only reply (503, no
    stream listens on the subject) has an empty body."""
    return ack.startswith(b'{"stream"') and b'"error"' not in ack


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
        self._ack_timeout = ack_timeout_seconds
        self._inbox = ""
        self._subscription: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._next = 0
        self._newest_acked = -1  # token of the newest acknowledgement received
        self._last_ack = time.monotonic()  # when it (or the publisher's start) was
        # reply token -> (candle, monotonic time sent); insertion order is sending order
        self._pending: dict[int, tuple[Candle, float]] = {}
        self._settled = asyncio.Event()  # set while nothing is awaiting its acknowledgement
        self._settled.set()
        self._lag: dict[bool, float | None] = {True: None, False: None}  # worst of this loop turn
        self._lag_due = False

    async def _open(self) -> None:
        inbox = self._bus.client.new_inbox()
        self._subscription = await self._bus.client.subscribe(f"{inbox}.*", cb=self._on_ack)
        self._inbox = inbox + "."
        self._sweeper = asyncio.create_task(self._sweep(), name="candle-ack-sweeper")

    async def publish(self, candle: Candle, backfilled: bool = False) -> None:
        """Send one closed candle; returns once it is written to the connection, before its ack."""
        if not self._inbox:
            await self._open()
        now = time.time()
        event = candle.event(int(now * 1000), backfilled)
        token = self._next
        self._next += 1
        self._pending[token] = (candle, time.monotonic())
        self._settled.clear()
        try:
            await self._bus.client.publish(
                candle.key.subject,
                event.SerializeToString(),
                reply=f"{self._inbox}{token}",
                headers={"Nats-Msg-Id": event.event_id},
            )
        except Exception:
            self._forget(token)
            raise
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

    def _forget(self, token: int) -> tuple[Candle, float] | None:
        entry = self._pending.pop(token, None)
        if not self._pending:
            self._settled.set()
        return entry

    async def _on_ack(self, msg: Msg) -> None:
        token = int(msg.subject[len(self._inbox) :])
        self._newest_acked = max(self._newest_acked, token)
        self._last_ack = time.monotonic()
        entry = self._forget(token)
        if entry is None:
            return  # already given up on (timed out) and repaired; the repeat was a duplicate
        candle = entry[0]
        if stored(msg.data):
            self._metrics.published[candle.key.category] += 1
            self._on_acked(candle)
        else:
            self._failed(candle, msg.data.decode(errors="replace") or str(msg.headers))

    def _failed(self, candle: Candle, error: str) -> None:
        log.warning("candle publish failed; repairing", extra={"stream": str(candle.key), "error": error})
        self._on_failed(candle)

    async def _sweep(self) -> None:
        """Candles whose acknowledgement is lost are failed (and so repaired).

        JetStream acknowledges one stream's messages in order, so a candle still pending when a
        later one has been acknowledged lost its reply (a connection dropped with it in the buffer).
        When no acknowledgement at all has come for `ack_timeout_seconds`, everything older is failed.
        Merely slow acknowledgements (a busy loop that has not read them yet) fail nothing.
        """
        while True:
            await asyncio.sleep(min(1.0, self._ack_timeout / 2))
            now = time.monotonic()
            expired = now - self._ack_timeout
            stalled = now - self._last_ack > self._ack_timeout
            late = []
            for token, (candle, sent) in self._pending.items():
                if sent > expired or (token > self._newest_acked and not stalled):
                    break
                late.append((token, candle))
            for token, candle in late:
                self._forget(token)
                self._failed(candle, f"no acknowledgement within {self._ack_timeout}s")

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    async def settle(self, within: float = 10.0) -> None:
        """Wait (up to `within` seconds) for the acknowledgements still outstanding (graceful
        shutdown, tests, benchmarks)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), within)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()

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
