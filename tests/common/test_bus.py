"""The NATS JetStream helpers against a real nats-server: streams, idempotent publishing, durable
consumers with explicit ack, and trace context carried in headers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from google.protobuf.wrappers_pb2 import StringValue
from nats.aio.msg import Msg
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.common import bus as bus_module
from services.common.bus import STREAMS, Bus
from tests.helpers.infra import Infra


def _tracer() -> trace.Tracer:
    # A private SDK provider: spans get real ids without touching the process-wide provider.
    return TracerProvider().get_tracer("test")


async def connect(infra: Infra) -> Bus:
    return await bus_module.connect(infra.nats.url, "test")


async def test_streams_are_declared_once_and_redeclaring_is_harmless(infra: Infra) -> None:
    bus = await connect(infra)
    await bus.ensure_streams()  # a second service starting must not fail or reset anything
    names = {info.config.name for info in await bus.js.streams_info()}
    assert {stream.name for stream in STREAMS} <= names
    await bus.drain()


async def test_publishing_the_same_message_id_twice_stores_it_once(infra: Infra) -> None:
    bus = await connect(infra)
    subject = f"md.candle.test.{uuid.uuid4().hex}"
    first = await bus.publish(subject, StringValue(value="candle"), msg_id=f"{subject}:1")
    again = await bus.publish(subject, StringValue(value="candle"), msg_id=f"{subject}:1")
    other = await bus.publish(subject, StringValue(value="next"), msg_id=f"{subject}:2")
    assert (first, again, other) == (True, False, True)
    info = await bus.js.stream_info("MARKETDATA", subjects_filter=subject)
    assert info.state.subjects == {subject: 2}
    await bus.drain()


async def test_a_failing_handler_gets_the_message_again_and_trace_context_crosses(infra: Infra) -> None:
    bus = await connect(infra)
    subject = f"sig.tenant-{uuid.uuid4().hex}.bot"
    seen: list[tuple[str, int]] = []
    done = asyncio.Event()

    async def handler(message: StringValue, raw: Msg) -> None:
        trace_id = trace.get_current_span().get_span_context().trace_id
        seen.append((message.value, trace_id))
        if len(seen) == 1:
            raise RuntimeError("first attempt fails: the message must come back")
        done.set()

    with _tracer().start_as_current_span("publish") as span:
        await bus.publish(subject, StringValue(value="entry"), msg_id=subject)
        publisher_trace = span.get_span_context().trace_id
    bus.consume("SIGNALS", f"test-{uuid.uuid4().hex[:8]}", subject, StringValue, handler, ack_wait_seconds=1)
    await asyncio.wait_for(done.wait(), 15)
    assert [value for value, _ in seen] == ["entry", "entry"]
    assert all(trace_id == publisher_trace for _, trace_id in seen)
    await bus.drain()


async def test_a_consumer_keeps_consuming_after_an_idle_spell(infra: Infra) -> None:
    bus = await connect(infra)
    subject = f"exec.position.tenant-{uuid.uuid4().hex}"
    seen: list[str] = []
    arrived = asyncio.Event()

    async def handler(message: StringValue, raw: Msg) -> None:
        seen.append(message.value)
        arrived.set()

    task = bus.consume("EXECUTION", f"idle-{uuid.uuid4().hex[:8]}", subject, StringValue, handler)
    await asyncio.sleep(2.5)  # several empty fetches time out meanwhile
    assert not task.done(), "the consumer loop ended while idle"
    await bus.publish(subject, StringValue(value="late"), msg_id=subject)
    await asyncio.wait_for(arrived.wait(), 10)
    assert seen == ["late"]
    await bus.drain()


async def test_a_concurrent_consumer_runs_handlers_at_once_and_retry_brings_a_message_back(
    infra: Infra,
) -> None:
    bus = await connect(infra)
    prefix = f"sig.tenant-{uuid.uuid4().hex}"
    in_flight, peak = 0, 0
    all_in = asyncio.Event()
    finished: list[str] = []
    retried: list[str] = []
    everything = asyncio.Event()

    async def handler(message: StringValue, raw: Msg) -> None:
        nonlocal in_flight, peak
        if message.value == "later" and not retried:
            retried.append(message.value)
            raise bus_module.Retry(0.2)  # not an error: comes back after the delay
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 4:
            all_in.set()
        # Each handler holds until four are running: one at a time would never get there.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 5)
        in_flight -= 1
        finished.append(message.value)
        if len(finished) == 5:
            everything.set()

    for i in range(4):
        await bus.publish(f"{prefix}.{i}", StringValue(value=str(i)), msg_id=f"{prefix}.{i}")
    await bus.publish(f"{prefix}.later", StringValue(value="later"), msg_id=f"{prefix}.later")
    bus.consume("SIGNALS", f"fan-{uuid.uuid4().hex[:8]}", f"{prefix}.>", StringValue, handler, concurrency=8)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(everything.wait(), 20)
    assert sorted(finished) == ["0", "1", "2", "3", "later"]
    assert peak >= 4 and retried == ["later"]
    await bus.drain()
