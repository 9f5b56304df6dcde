"""NATS JetStream: the streams every service relies on, declared in one place, and the one way to
publish and consume protobuf messages on them.

Publishing is idempotent: every message carries a `Nats-Msg-Id` derived from what it means (a candle,
a signal decision), and JetStream drops a repeat inside the stream's duplicate window. Consumers are
durable pull consumers with explicit ack, so a message is redelivered until its handler succeeds.
Beyond the duplicate window, consumers keep their own record of what they have handled (the
database's unique keys): the window makes repeats rare, the database makes them harmless.

High-rate publishers do not wait for each acknowledgement: a `Pipeline` (services/common/pipeline.py,
from `Bus.pipeline`) writes messages in call order and settles their acknowledgements as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats
import orjson
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck, StorageType, StreamConfig
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.common import telemetry
from services.common.pipeline import C, Pipeline

log = logging.getLogger("tradebot.bus")

M = TypeVar("M", bound=Message)

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class Stream:
    name: str
    subjects: tuple[str, ...]
    max_age_seconds: float
    duplicate_window_seconds: float
    description: str


# Every subject the platform uses belongs to exactly one of these streams.
STREAMS: tuple[Stream, ...] = (
    Stream("MARKETDATA", ("md.>",), 7 * DAY, HOUR, "closed candles and throttled tickers from marketdata"),
    Stream("SIGNALS", ("sig.>",), 30 * DAY, DAY, "strategy signals: entries, exits, reversals"),
    Stream("EXECUTION", ("exec.>",), 30 * DAY, DAY, "orders, fills, positions, wallet and risk events"),
    Stream("BOTS", ("bot.>",), 30 * DAY, HOUR, "bot lifecycle events"),
    Stream("AUDIT", ("audit.>",), 30 * DAY, DAY, "events other services append to the audit trail"),
    Stream("TENANTS", ("tenant.>",), 7 * DAY, DAY, "tenant changes other services react to (credentials)"),
)


class Retry(Exception):
    """Raised by a handler: the message is not done yet (not an error); it comes back after `delay`."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay}s")
        self.delay = delay


async def decode(raw: Msg, message_type: type[M]) -> M | None:
    """The message, or None when its bytes are not one: then it is terminated (never redelivered: no
    retry can make it readable) and logged by subject (its content may be anything)."""
    message = message_type()
    try:
        message.ParseFromString(raw.data)
    except DecodeError:
        log.error("undecodable message dropped", extra={"subject": raw.subject})
        await raw.term()
        return None
    return message


def _settle_stored(future: asyncio.Future[PubAck], reply: bytes) -> None:
    if not future.done():
        # orjson: one acknowledgement per published message; the standard parser was a tenth of the
        # strategy engine's time on a candle burst (bench/strategy.py).
        future.set_result(PubAck.from_response(orjson.loads(reply)))


def _settle_failed(future: asyncio.Future[PubAck], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


class Bus:
    """A connected NATS client with JetStream, for one service process."""

    def __init__(self, client: NatsClient, service: str) -> None:
        self.client = client
        self.js: JetStreamContext = client.jetstream()
        self.service = service
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[JetStreamContext.PullSubscription] = []
        self._tracer = telemetry.tracer("tradebot.bus")
        self._pipelines: list[Pipeline[Any]] = []
        self._futures: Pipeline[asyncio.Future[PubAck]] | None = None  # publish_pipelined's

    async def ensure_streams(self) -> None:
        """Create or update the platform's streams (idempotent, safe from every service)."""
        for stream in STREAMS:
            config = StreamConfig(
                name=stream.name,
                subjects=list(stream.subjects),
                description=stream.description,
                storage=StorageType.FILE,
                max_age=stream.max_age_seconds,
                duplicate_window=stream.duplicate_window_seconds,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(config)

    async def publish(self, subject: str, message: Message, msg_id: str) -> bool:
        """Publish `message` once; returns False when JetStream reports it as a duplicate."""
        headers = telemetry.inject({"Nats-Msg-Id": msg_id})
        ack = await self.js.publish(subject, message.SerializeToString(), headers=headers)
        return not ack.duplicate

    def pipeline(
        self,
        on_stored: Callable[[C, bytes], None],
        on_failed: Callable[[C, Exception], None],
        *,
        ack_timeout_seconds: float = 15.0,
    ) -> Pipeline[C]:
        """A `Pipeline` on this connection (closed by `drain`)."""
        pipeline = Pipeline(self.client, on_stored, on_failed, ack_timeout_seconds)
        self._pipelines.append(pipeline)
        return pipeline

    async def publish_pipelined(self, subject: str, message: Message, msg_id: str) -> asyncio.Future[PubAck]:
        """Publish without waiting for JetStream's ack; returns the ack's future, with trace context.

        Many messages in flight on one connection keep their order. The future fails with the
        JetStream error (or `TimeoutError` for a lost acknowledgement, see `Pipeline`); a failed
        message must be published again, with the same id, which makes the repeat harmless.
        """
        if self._futures is None:
            self._futures = self.pipeline(_settle_stored, _settle_failed)
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        await self._futures.publish(subject, message.SerializeToString(), msg_id, future, traced=True)
        return future

    def consume(
        self,
        stream: str,
        durable: str,
        subject: str,
        message_type: type[M],
        handler: Callable[[M, Msg], Awaitable[None]],
        *,
        batch: int = 100,
        ack_wait_seconds: float = 30.0,
        retry_delay_seconds: float = 1.0,
        concurrency: int = 1,
        finish_seconds: float = 10.0,
    ) -> asyncio.Task[None]:
        """Run `handler` for each message of a durable pull consumer; ack after it returns.

        A handler that raises gets the message again after `retry_delay_seconds` (a negative ack),
        or after `Retry.delay` when it raises `Retry`; a handler that never answers gets it again
        after `ack_wait_seconds`. Outcomes are recorded before the ack, never after. A message that
        does not parse is terminated and logged: no retry can fix it.

        `concurrency` > 1 runs up to that many handlers at once, started in arrival order (a handler
        that must keep some messages in order takes an asyncio lock first: waiters queue in arrival
        order). On stop, handlers already running get `finish_seconds` to record their outcome.
        """

        async def loop() -> None:
            config = ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ack_wait_seconds,
                filter_subject=subject,
                max_ack_pending=max(concurrency * 4, batch) if concurrency > 1 else None,
            )
            sub = await self.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
            self._subscriptions.append(sub)
            gate = asyncio.Semaphore(concurrency)
            running: set[asyncio.Task[None]] = set()

            async def one(raw: Msg) -> None:
                try:
                    await self._handle(raw, message_type, handler, retry_delay_seconds)
                finally:
                    gate.release()

            try:
                while True:
                    try:
                        messages = await sub.fetch(batch, timeout=1.0)
                    except (nats.errors.TimeoutError, TimeoutError):  # nats-py raises either when idle
                        current = asyncio.current_task()
                        if current is not None and current.cancelling():  # a stop, not an idle fetch
                            raise asyncio.CancelledError() from None
                        continue
                    for raw in messages:
                        if concurrency == 1:
                            await self._handle(raw, message_type, handler, retry_delay_seconds)
                            continue
                        await gate.acquire()
                        task = asyncio.create_task(one(raw))
                        running.add(task)
                        task.add_done_callback(running.discard)
            finally:
                if running:
                    await asyncio.wait(running, timeout=finish_seconds)

        task = asyncio.create_task(loop(), name=f"consume:{durable}")
        self._tasks.append(task)
        return task

    async def _handle(
        self,
        raw: Msg,
        message_type: type[M],
        handler: Callable[[M, Msg], Awaitable[None]],
        retry_delay_seconds: float,
    ) -> None:
        token = otel_context.attach(telemetry.extract(raw.headers))
        try:
            with self._tracer.start_as_current_span(f"consume {raw.subject}", kind=trace.SpanKind.CONSUMER):
                message = await decode(raw, message_type)
                if message is None:
                    return
                try:
                    await handler(message, raw)
                except Retry as retry:
                    await raw.nak(delay=retry.delay)
                    return
                except Exception:
                    log.exception("message handler failed; retrying", extra={"subject": raw.subject})
                    await raw.nak(delay=retry_delay_seconds)
                    return
                await raw.ack()
        finally:
            otel_context.detach(token)

    async def stop_consuming(self) -> None:
        """Stop taking new messages; un-acked ones are redelivered to the next consumer."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        # An idle pull subscription would otherwise hold the connection's drain for its full timeout.
        for sub in self._subscriptions:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subscriptions.clear()

    async def drain(self) -> None:
        """Stop consuming and flush what was published (part of graceful shutdown)."""
        await self.stop_consuming()
        if self.client.is_connected:
            await self.client.drain()  # replies already received are still handed to the pipelines
        for pipeline in self._pipelines:
            await pipeline.close()


async def connect(url: str, service: str) -> Bus:
    client = await nats.connect(url, name=service, max_reconnect_attempts=-1)
    bus = Bus(client, service)
    await bus.ensure_streams()
    return bus
