"""The NATS JetStream helpers against a real nats-server: streams, idempotent publishing, durable
consumers with explicit ack, trace context carried in headers, and pipelined publishing (in order,
each acknowledgement settled, refusals and lost acknowledgements handed back)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import nats
import nats.js.errors
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, StreamConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.common import bus as bus_module
from services.common.bus import STREAMS, Bus
from services.common.pipeline import Pipeline
from services.devstack.nats import EmbeddedNats
from tests.helpers.infra import Infra


def _tracer() -> trace.Tracer:
    # A private SDK provider: spans get real ids without touching the process-wide provider.
    return TracerProvider().get_tracer("test")


async def connect(infra: Infra) -> Bus:
    return await bus_module.connect(infra.nats.url, "test")


async def eventually(check: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


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


async def test_an_undecodable_message_is_dropped_once_and_the_next_one_is_handled(infra: Infra) -> None:
    """Bytes that are not the stream's message type can never be handled: they are terminated (no
    redelivery loop) and logged, and the consumer goes on with the next message."""
    bus = await connect(infra)
    subject = f"exec.position.tenant-{uuid.uuid4().hex}"
    durable = f"junk-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    async def handler(message: StringValue, raw: Msg) -> None:
        seen.append(message.value)

    await bus.js.publish(subject, b"\xff\xff not a protobuf", headers={"Nats-Msg-Id": f"{subject}-junk"})
    await bus.publish(subject, StringValue(value="after the junk"), msg_id=f"{subject}-good")
    bus.consume("EXECUTION", durable, subject, StringValue, handler, ack_wait_seconds=1)
    await eventually(lambda: seen == ["after the junk"], 10, "the good message")
    await asyncio.sleep(2.5)  # past the ack wait: a junk message left unacknowledged would come back
    info = await bus.js.consumer_info("EXECUTION", durable)
    assert (info.num_ack_pending, info.num_redelivered, info.num_pending) == (0, 0, 0), info
    assert seen == ["after the junk"]
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


async def test_a_pipeline_settles_messages_in_order_and_a_repeat_is_a_stored_duplicate(
    infra: Infra,
) -> None:
    bus = await connect(infra)
    subject = f"md.candle.test.{uuid.uuid4().hex}"
    stored: list[tuple[int, bytes]] = []
    failed: list[tuple[int, Exception]] = []
    pipeline: Pipeline[int] = bus.pipeline(
        lambda n, reply: stored.append((n, reply)), lambda n, e: failed.append((n, e))
    )
    try:
        for n in range(300):
            await pipeline.publish(subject, str(n).encode(), f"{subject}:{n}", n)
        for n in range(250, 300):  # a repair sending again what was already stored
            await pipeline.publish(subject, b"again", f"{subject}:{n}", n)
        await pipeline.settle(30)
        assert [n for n, _ in stored] == list(range(300)) + list(range(250, 300))
        assert not failed and pipeline.unacknowledged == 0
        duplicate = [json.loads(reply).get("duplicate", False) for _, reply in stored]
        assert duplicate == [False] * 300 + [True] * 50, stored[300]
        info = await bus.js.stream_info("MARKETDATA", subjects_filter=subject)
        assert info.state.subjects == {subject: 300}
        last = await bus.js.get_last_msg("MARKETDATA", subject)
        # No trace context was asked for: the message id is the only header; the repeat was not stored.
        assert last.data == b"299" and last.headers == {"Nats-Msg-Id": f"{subject}:299"}
    finally:
        await bus.drain()


async def test_a_message_no_stream_takes_or_a_stream_refuses_fails_with_the_jetstream_error(
    infra: Infra, tmp_path: Path
) -> None:
    server = EmbeddedNats(tmp_path / "nats").start()
    client = await nats.connect(server.url)
    bus = Bus(client, "test")  # no streams declared: JetStream answers that no one listens
    failed: list[tuple[int, Exception]] = []
    pipeline: Pipeline[int] = bus.pipeline(lambda n, reply: None, lambda n, e: failed.append((n, e)))
    try:
        for n in range(3):
            await pipeline.publish(f"md.candle.nowhere.{n}", b"x", f"nowhere-{n}", n)
        await eventually(lambda: len(failed) == 3, 20, "the refusals")
        assert [n for n, _ in failed] == [0, 1, 2] and pipeline.unacknowledged == 0
        assert all(isinstance(e, nats.js.errors.NoStreamResponseError) for _, e in failed)

        # A stream that is full and discards new messages answers with an error body.
        subject = f"full.{uuid.uuid4().hex}"
        await bus.js.add_stream(
            StreamConfig(name="FULL", subjects=[subject], max_msgs=1, discard=DiscardPolicy.NEW)
        )
        failed.clear()
        await pipeline.publish(subject, b"first", "first", 10)
        await pipeline.publish(subject, b"second", "second", 11)
        await eventually(lambda: len(failed) == 1, 20, "the full stream's refusal")
        ((n, error),) = failed
        assert n == 11 and isinstance(error, nats.js.errors.APIError) and "maximum messages" in str(error)
    finally:
        await bus.drain()
        server.stop()


async def test_a_message_whose_acknowledgement_never_comes_is_failed(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats").start()
    client = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    bus = Bus(client, "test")
    await bus.ensure_streams()
    stored: list[str] = []
    failed: list[tuple[str, Exception]] = []
    pipeline: Pipeline[str] = bus.pipeline(
        lambda name, reply: stored.append(name),
        lambda name, e: failed.append((name, e)),
        ack_timeout_seconds=1.0,
    )
    subject = f"md.candle.test.{uuid.uuid4().hex}"
    try:
        await pipeline.publish(subject, b"1", f"{subject}:1", "first")
        await eventually(lambda: stored == ["first"], 20, "the first acknowledgement")
        server.stop()  # the connection goes with the second message in its buffer
        await eventually(lambda: not client.is_connected, 20, "the client to notice")
        await pipeline.publish(subject, b"2", f"{subject}:2", "second")
        await eventually(lambda: len(failed) == 1, 20, "the lost acknowledgement given up on")
        assert failed[0][0] == "second" and isinstance(failed[0][1], TimeoutError)
        assert "no acknowledgement within 1.0s" in str(failed[0][1])
        await asyncio.sleep(0.2)
        assert stored == ["first"] and pipeline.unacknowledged == 0
    finally:
        await pipeline.close()
        with contextlib.suppress(ConnectionError):  # closing flushes to the server that is gone
            await client.close()
        server.stop()


async def test_publish_pipelined_returns_the_acks_future_and_carries_trace_context(infra: Infra) -> None:
    bus = await connect(infra)
    subject = f"sig.tenant-{uuid.uuid4().hex}.bot"
    try:
        with _tracer().start_as_current_span("decide") as span:
            futures = [
                await bus.publish_pipelined(subject, StringValue(value=v), msg_id=f"{subject}:{v}")
                for v in ("entry", "exit", "entry")
            ]
            trace_id = span.get_span_context().trace_id
        acks = await asyncio.wait_for(asyncio.gather(*futures), 20)
        assert [bool(ack.duplicate) for ack in acks] == [False, False, True]
        assert acks[0].stream == "SIGNALS" and acks[1].seq == acks[0].seq + 1
        raw = await bus.js.get_msg("SIGNALS", acks[0].seq)
        assert raw.headers is not None and f"{trace_id:032x}" in raw.headers["traceparent"]

        missing = await bus.publish_pipelined("nostream.anywhere", StringValue(value="x"), msg_id="x")
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await asyncio.wait_for(missing, 20)
    finally:
        await bus.drain()


def test_a_pipeline_refuses_an_ack_timeout_that_is_not_positive() -> None:
    client = nats.NATS()  # never connected: the refusal comes before any use
    with pytest.raises(ValueError, match="ack_timeout_seconds must be positive, got 0"):
        Bus(client, "test").pipeline(lambda n, r: None, lambda n, e: None, ack_timeout_seconds=0)
