"""Closed candles, delivered the moment JetStream has them: a durable push consumer.

The shared pull loop (`Bus.consume`) fetches in batches and, once a batch has started, waits for it to
fill or for the pull to expire (up to a second), and acknowledges a message only when its handler has
returned: right for throughput, wrong for a burst of candles that all close in the same instant, where
the first symbol's signals would wait for the last symbol's candle, and every symbol for the previous
one's publish acknowledgements. Here each candle is handled as it arrives, in stream order (the client
runs one callback at a time); the handler may return the publication of its signals, and the candle is
acknowledged when that completes (negatively, for a redelivery, if it fails) while the next candle is
already being evaluated. Trace context, parsing and error handling follow the bus's (`Bus._handle`):
the same consumer span, a message that does not parse is terminated, a handler that raises gets the
candle again after a delay. The consumer is durable with explicit ack, so a restart resumes after the last
acknowledged candle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import context as otel_context
from opentelemetry import trace

from services.common import telemetry
from services.common.bus import Bus

log = logging.getLogger("tradebot.strategy.feed")
M = TypeVar("M", bound=Message)
# The handler returns what is still in flight for the message (e.g. signal publication), or None.
Handler = Callable[[M, Msg], Awaitable[Awaitable[object] | None]]
ACK_WAIT_SECONDS = 30.0
RETRY_DELAY_SECONDS = 1.0
MAX_IN_FLIGHT = 1000


class PushedFeed:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._subscription: Subscription | None = None
        self._acks: set[asyncio.Task[None]] = set()
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

        async def deliver(raw: Msg) -> None:
            token = otel_context.attach(telemetry.extract(raw.headers))
            try:
                with self._tracer.start_as_current_span(
                    f"consume {raw.subject}", kind=trace.SpanKind.CONSUMER
                ):
                    await self._deliver(raw, message_type, handler)
            finally:
                otel_context.detach(token)

        self._subscription = await self.bus.js.subscribe(
            subject, durable=durable, stream=stream, config=config, manual_ack=True, cb=deliver
        )

    async def _deliver(self, raw: Msg, message_type: type[M], handler: Handler[M]) -> None:
        message = message_type()
        try:
            message.ParseFromString(raw.data)
        except DecodeError:
            log.error("undecodable message dropped", extra={"subject": raw.subject})
            await raw.term()
            return
        try:
            in_flight = await handler(message, raw)
        except Exception:
            log.exception("message handler failed; retrying", extra={"subject": raw.subject})
            await raw.nak(delay=RETRY_DELAY_SECONDS)
            return
        if in_flight is None:
            await raw.ack()
            return
        settled = asyncio.ensure_future(in_flight)
        settled.add_done_callback(lambda done: self._settle(raw, done))

    def _settle(self, raw: Msg, done: asyncio.Future[object]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if failed:
            log.error("work for a message failed; it comes again", extra={"subject": raw.subject})
        task = asyncio.ensure_future(raw.nak(delay=RETRY_DELAY_SECONDS) if failed else raw.ack())
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def stop(self) -> None:
        """Stop taking messages; unacknowledged ones go to the next consumer after the ack wait."""
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
        await asyncio.gather(*self._acks, return_exceptions=True)
