"""The service's metrics, declared once and read at scrape time from the counters the code keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from services.common import telemetry
from services.execution.account_stream import StreamWorkers
from services.execution.budget import RequestBudget
from services.execution.intake import SignalIntake
from services.execution.orders import OrderPlacer
from services.execution.reconcile import Reconciler

Reader = Callable[[], Iterable[Observation]]


def _one(read: Callable[[], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    return lambda options: [Observation(read())]


class ExecutionMetrics:
    def __init__(
        self,
        intake: SignalIntake,
        placer: OrderPlacer,
        reconciler: Reconciler,
        budget: RequestBudget,
        workers: StreamWorkers,
    ) -> None:
        meter = telemetry.meter("tradebot.execution")
        meter.create_observable_counter(
            "execution_orders_accepted",
            [_one(lambda: intake.accepted_total)],
            description="Signals whose order the exchange accepted",
        )
        meter.create_observable_counter(
            "execution_order_lookups",
            [_one(lambda: placer.lookups)],
            description="Lookups by orderLinkId after an unknown outcome or a duplicate answer",
        )
        meter.create_observable_counter(
            "execution_orders_adopted",
            [_one(lambda: placer.adopted)],
            description="Orders found on the exchange by lookup and adopted instead of placed again",
        )
        meter.create_observable_counter(
            "execution_budget_waits",
            [_one(lambda: budget.waits)],
            description="Requests that waited for the per-key or per-IP budget",
        )
        meter.create_observable_counter(
            "execution_stream_messages",
            [_one(lambda: workers.applied)],
            description="Private stream messages applied to the stored account",
        )
        meter.create_observable_counter(
            "execution_reconcile_differences",
            [lambda options: [Observation(n, {"kind": k}) for k, n in reconciler.differences.items()]],
            description="Differences reconciliation corrected, by kind",
        )
