"""Closed candles, delivered the moment JetStream has them and handled in bursts: a durable push consumer
drained in batches.

Every symbol's candle closes in the same instant, so candles arrive as a burst. Handling them one at a
time (parse, evaluate, publish, acknowledge, next) puts every per-message cost of the earlier symbols in
front of the later symbols' signals. Here the server pushes candles as they arrive and the client's
delivery callback only queues them; the loop waits for the first, takes every candle queued behind it
(up to `MAX_BATCH`),
and hands the lot to the handler at once, which evaluates them all and publishes all their signals
pipelined. `MAX_BATCH` bounds a batch, so that the first symbols' signals leave while the last symbols
of a large burst are still being evaluated. While a batch's publish acknowledgements are on their way
the next batch is already being taken, so the batch size follows the load: one candle when they trickle
in, up to `MAX_BATCH` when they come together. Candles of one stream stay in stream order (one
consumer, one loop).

Acknowledgement is per message: the handler returns, for each message, None (done), what is still in
flight for it (acknowledged when that completes, negatively if it fails) or the exception it met
(negatively acknowledged, so it comes again after a delay while the rest of the batch goes on). A
message that does not parse is terminated: no retry can fix it. The consumer is durable with explicit
ack, so a restart resumes after the last acknowledged candle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import nats
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import trace

from services.common import telemetry
from services.common.bus import Bus, decode

log = logging.getLogger("tradebot.strategy.feed")
M = TypeVar("M", bound=Message)
# Per message: None (done), what is still in flight for it, or the exception it met.
Outcome = Awaitable[object] | BaseException | None
Handler = Callable[[Sequence[M]], Awaitable[Sequence[Outcome]]]
ACK_WAIT_SECONDS = 30.0
RETRY_DELAY_SECONDS = 1.0
MAX_IN_FLIGHT = 1000
MAX_BATCH = 25


class PushedFeed:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._subscription: Subscription | None = None
        self._loop: asyncio.Task[None] | None = None
        self._acks: set[asyncio.Future[None]] = set()
        self._tracer = telemetry.tracer("tradebot.strategy.feed")

    async def start(
        self, stream: str, durable: str, subject: str, message_type: type[M], handler: Handler[M]
    ) -> None:
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=MAX_IN_FLIGHT,
            filter_subject=subject,
        )
        arrived: deque[Msg] = deque()
        wake = asyncio.Event()

        async def take(raw: Msg) -> None:
            # Only queued here: the client's delivery loop hands over a whole burst without a task or a
            # wait per message (its next_msg costs a uuid4 and a task per call).
            arrived.append(raw)
            wake.set()

        self._subscription = await self.bus.js.subscribe(
            subject, durable=durable, stream=stream, config=config, manual_ack=True, cb=take
        )
        self._loop = asyncio.create_task(self._run(arrived, wake, message_type, handler), name=durable)

    async def _run(
        self, arrived: deque[Msg], wake: asyncio.Event, message_type: type[M], handler: Handler[M]
    ) -> None:
        while True:
            if not arrived:
                wake.clear()
                await wake.wait()
            raws = [arrived.popleft() for _ in range(min(len(arrived), MAX_BATCH))]
            try:
                await self._deliver(raws, message_type, handler)
            except Exception:  # never leave the consumer without its loop; unacknowledged ones come again
                log.exception("candle batch not handled; its messages come again after the ack wait")
                await asyncio.sleep(RETRY_DELAY_SECONDS)
            # Let the connection write this batch's signals before the next batch is evaluated.
            await asyncio.sleep(0)

    async def _deliver(self, raws: list[Msg], message_type: type[M], handler: Handler[M]) -> None:
        messages: list[M] = []
        taken: list[Msg] = []
        links = []
        for raw in raws:
            message = await decode(raw, message_type)
            if message is None:
                continue
            messages.append(message)
            taken.append(raw)
            # Each candle's trace (from marketdata) is linked to the one span of the batch.
            context = trace.get_current_span(telemetry.extract(raw.headers)).get_span_context()
            if context.is_valid:
                links.append(trace.Link(context))
        if not messages:
            return
        with self._tracer.start_as_current_span(
            "consume candles", kind=trace.SpanKind.CONSUMER, links=links, attributes={"batch": len(taken)}
        ):
            try:
                outcomes = await handler(messages)
            except Exception as error:
                log.exception("batch handler failed; its messages come again")
                outcomes = [error] * len(taken)
        for raw, outcome in zip(taken, outcomes, strict=True):
            if outcome is None:
                self._track(raw.ack())
            elif isinstance(outcome, BaseException):
                self._track(raw.nak(delay=RETRY_DELAY_SECONDS))
            else:
                settled = asyncio.ensure_future(outcome)
                settled.add_done_callback(lambda done, raw=raw: self._settle(raw, done))  # type: ignore[misc]

    def _settle(self, raw: Msg, done: asyncio.Future[object]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if failed:
            log.error("work for a message failed; it comes again", extra={"subject": raw.subject})
        self._track(raw.nak(delay=RETRY_DELAY_SECONDS) if failed else raw.ack())

    def _track(self, ack: Awaitable[None]) -> None:
        task = asyncio.ensure_future(ack)
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def stop(self) -> None:
        """Stop taking messages; unacknowledged ones go to the next consumer after the ack wait."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
        await asyncio.gather(*self._acks, return_exceptions=True)
