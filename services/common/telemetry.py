"""OpenTelemetry traces and metrics, and the Prometheus `/metrics` endpoint, set up once per process.

Traces go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard OTel variable),
and are otherwise kept in-process so trace ids still appear in logs and cross service boundaries.
Trace context crosses gRPC calls (metadata) and NATS messages (headers) through `inject` / `extract`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping

from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import start_http_server


@functools.cache
def configure_telemetry(service: str) -> None:
    """Install the SDK providers for this process (once: the SDK allows one provider of each kind)."""
    resource = Resource.create({"service.name": service, "service.namespace": "tradebot"})
    tracer_provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()]))


def serve_metrics(host: str, port: int) -> int:
    """Start the Prometheus scrape endpoint in a thread; returns the bound port."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


def inject(carrier: dict[str, str]) -> dict[str, str]:
    """Write the current trace context into a header dict (gRPC metadata or NATS headers)."""
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | Iterable[tuple[str, str | bytes]] | None) -> Context:
    """Read a trace context from NATS headers or gRPC invocation metadata."""
    if headers is None:
        return Context()
    if isinstance(headers, Mapping):
        carrier = {k.lower(): v for k, v in headers.items()}
    else:
        carrier = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in headers}
    return propagate.extract(carrier)
