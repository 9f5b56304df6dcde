"""Publishing to JetStream without waiting for each acknowledgement (`Pipeline`), and reading what an
acknowledgement says (`stored`, `refusal`). `Bus.pipeline` and `Bus.publish_pipelined` are the ways
services use it; docs/decisions/0021-marketdata-ingest-fast-path.md says why it is not nats-py's
`publish_async`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.common import telemetry

log = logging.getLogger("tradebot.bus")
C = TypeVar("C")


def stored(reply: bytes) -> bool:
    """A JetStream publish acknowledgement that says stored (or already stored: a duplicate).

    `{"stream":…,"seq":…}` on success; an error carries `"error"`; a status-only reply (503, no
    stream listens on the subject) has an empty body. The prefix test decides the usual case
    without parsing JSON (a per-message cost at tens of thousands a second)."""
    if reply.startswith(b'{"stream"'):
        return b'"error"' not in reply
    try:
        body = json.loads(reply)
    except ValueError:
        return False
    return isinstance(body, dict) and "stream" in body and "error" not in body


def refusal(msg: Msg) -> Exception:
    """The error a reply that is not `stored` stands for, as nats-py's own publish raises it."""
    if not msg.data:
        status = (msg.headers or {}).get("Status", "")
        if status == "503":
            return nats.js.errors.NoStreamResponseError()
        return nats.js.errors.APIError(
            code=int(status) if status.isdigit() else None,
            description=(msg.headers or {}).get("Description") or "empty acknowledgement",
        )
    try:
        error = json.loads(msg.data)["error"]
        nats.js.errors.APIError.from_error(error)  # raises the error's own class (400, 404, 503…)
    except nats.js.errors.APIError as refused:
        return refused
    except (ValueError, KeyError, TypeError):
        pass
    return nats.js.errors.APIError(description=msg.data.decode(errors="replace"))


class Pipeline(Generic[C]):
    """Publishing to JetStream without waiting for each acknowledgement.

    Each message is written with a reply subject on this pipeline's own inbox (`<inbox>.<n>`,
    integer tokens) and its acknowledgement settles it in the background: `on_stored(context,
    reply)` with the acknowledgement's JSON body, or `on_failed(context, error)`. Waiting for each
    acknowledgement would cap a publisher at one round trip per message. Order is kept: one
    connection, messages written in call order, and the server stores one stream's messages in that
    order. The `Nats-Msg-Id` makes publishing a failed message again harmless when it did get stored.

    An acknowledgement can be lost (the connection dropped with the message in its buffer). A
    pending message is failed with `TimeoutError` once it is older than `ack_timeout_seconds` and
    either a later one has been acknowledged (JetStream acknowledges a stream's messages in order)
    or no acknowledgement at all has arrived for that long. Merely slow acknowledgements (a busy
    loop that has not read them yet) fail nothing.
    """

    def __init__(
        self,
        client: NatsClient,
        on_stored: Callable[[C, bytes], None],
        on_failed: Callable[[C, Exception], None],
        ack_timeout_seconds: float,
    ) -> None:
        if ack_timeout_seconds <= 0:
            raise ValueError(f"ack_timeout_seconds must be positive, got {ack_timeout_seconds}")
        self._client = client
        self._on_stored = on_stored
        self._on_failed = on_failed
        self._ack_timeout = ack_timeout_seconds
        self._inbox = ""  # "<inbox>." once subscribed
        self._opening = asyncio.Lock()
        self._subscription: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._next = 0
        self._newest_acked = -1  # token of the newest acknowledgement received
        self._last_ack = time.monotonic()  # when it (or the pipeline's start) was
        # reply token -> (context, monotonic time sent); insertion order is sending order
        self._pending: dict[int, tuple[C, float]] = {}
        self._settled = asyncio.Event()  # set while nothing is awaiting its acknowledgement
        self._settled.set()

    async def _open(self) -> None:
        async with self._opening:  # two first publishes at once must not open two inboxes
            if self._inbox:
                return
            inbox = self._client.new_inbox()
            self._subscription = await self._client.subscribe(f"{inbox}.*", cb=self._on_reply)
            self._sweeper = asyncio.create_task(self._sweep(), name=f"ack-sweeper:{inbox}")
            self._inbox = inbox + "."

    async def publish(
        self, subject: str, payload: bytes, msg_id: str, context: C, *, traced: bool = False
    ) -> None:
        """Write one message; returns once it is on the connection, before its acknowledgement.

        `traced` carries the current trace context in the headers (messages that start outside a
        traced request, such as candles from the exchange, have none to carry)."""
        if not self._inbox:
            await self._open()
        headers = {"Nats-Msg-Id": msg_id}
        if traced:
            headers = telemetry.inject(headers)
        token = self._next
        self._next += 1
        self._pending[token] = (context, time.monotonic())
        self._settled.clear()
        try:
            await self._client.publish(subject, payload, reply=f"{self._inbox}{token}", headers=headers)
        except Exception:
            self._forget(token)
            raise

    def _forget(self, token: int) -> tuple[C, float] | None:
        entry = self._pending.pop(token, None)
        if not self._pending:
            self._settled.set()
        return entry

    async def _on_reply(self, msg: Msg) -> None:
        token = int(msg.subject[len(self._inbox) :])
        self._newest_acked = max(self._newest_acked, token)
        self._last_ack = time.monotonic()
        entry = self._forget(token)
        if entry is None:
            return  # already given up on (timed out) and failed; the repeat was a duplicate
        if stored(msg.data):
            self._on_stored(entry[0], msg.data)
        else:
            self._on_failed(entry[0], refusal(msg))

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._ack_timeout / 2))
            now = time.monotonic()
            expired = now - self._ack_timeout
            stalled = now - self._last_ack > self._ack_timeout
            late = []
            for token, (context, sent) in self._pending.items():
                if sent > expired or (token > self._newest_acked and not stalled):
                    break
                late.append((token, context))
            for token, context in late:
                self._forget(token)
                try:
                    self._on_failed(context, TimeoutError(f"no acknowledgement within {self._ack_timeout}s"))
                except Exception:  # a failing callback must not end the sweeping for everything after it
                    log.exception("pipeline failure callback raised")

    @property
    def unacknowledged(self) -> int:
        return len(self._pending)

    async def settle(self, within: float = 10.0) -> None:
        """Wait (up to `within` seconds) for the acknowledgements still outstanding (graceful
        shutdown, tests, benchmarks)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), within)

    async def close(self) -> None:
        """Stop sweeping and listening; what is still pending is neither stored nor failed."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
