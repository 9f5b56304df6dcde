"""The NATS JetStream helpers against a real nats-server: streams, idempotent publishing, durable
consumers with explicit ack, and trace context carried in headers."""

from __future__ import annotations

import asyncio
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
