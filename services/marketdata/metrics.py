"""The service's metrics, declared once (exported on /metrics by the shared telemetry setup).

Hot-path counters are plain integers bumped by the ingest code and read by observable instruments
at scrape time: an OTel `Counter.add` with attributes costs microseconds per call, which is real
money at tens of thousands of messages a second.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from services.common import telemetry


class FeedMetrics:
    def __init__(self) -> None:
        self.messages: Tally[str] = Tally()  # WebSocket messages ingested, by category
        self.published: Tally[str] = Tally()  # candle events acknowledged by JetStream, by category
        self.backfill_progress: dict[str, float] = {}  # stream -> fraction of its backfill done
        meter = telemetry.meter("tradebot.marketdata")
        meter.create_observable_counter(
            "marketdata_ws_messages",
            [self._observe(self.messages)],
            description="WebSocket messages ingested (rate() gives messages per second)",
        )
        meter.create_observable_counter(
            "marketdata_candles_published",
            [self._observe(self.published)],
            description="Closed candles published to JetStream",
        )
        meter.create_observable_gauge(
            "marketdata_backfill_progress",
            [self._observe_progress],
            description="Fraction of each stream's first backfill that is stored (1 when done)",
        )
        self.candle_lag = meter.create_histogram(
            "marketdata_candle_lag_seconds",
            unit="s",
            description="Publish time minus the candle's end, by how the candle arrived (live or backfilled)",
        )
        self.reconnects = meter.create_counter(
            "marketdata_reconnects", description="WebSocket reconnects, by category and cause"
        )
        self.gaps_repaired = meter.create_counter(
            "marketdata_gap_candles_repaired", description="Missed candles fetched over REST and published"
        )
        self.stale_streams = meter.create_up_down_counter(
            "marketdata_stale_streams", description="Streams currently silent for longer than allowed"
        )

    @staticmethod
    def _observe(tally: Tally[str]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(value, {"category": category}) for category, value in tally.items()]

        return observe

    def _observe_progress(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(done, {"stream": stream}) for stream, done in self.backfill_progress.items()]
