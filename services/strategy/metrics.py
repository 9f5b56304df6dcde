"""The service's own metrics (Prometheus through the shared OpenTelemetry meter)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from services.common import telemetry


class EngineMetrics:
    def __init__(self, bots_running: Callable[[], int]) -> None:
        meter = telemetry.meter("tradebot.strategy")

        def observe(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(bots_running())

        meter.create_observable_gauge(
            "strategy_bots_running", [observe], description="Bots warmed up and evaluating candles"
        )
        self.evaluation = meter.create_histogram(
            "strategy_candle_evaluation_seconds",
            unit="s",
            description="Time to evaluate a batch of closed candles and put all their signals on the wire",
        )
        self.signals = meter.create_counter(
            "strategy_signals_total", description="Signals published, by action (rate() gives per minute)"
        )
        self.skipped = meter.create_counter(
            "strategy_entries_skipped_total", description="Entries not signalled because sizing refused them"
        )
