"""Each active tenant's private Bybit stream (order, execution, position, wallet) through pybit's
`WebSocket`, and the workers that apply its messages to the stored account.

pybit calls back on its own thread; callbacks only hand the message to the event loop. Messages of
one tenant are applied in arrival order by one worker (tenants are spread over the workers by hash),
so an order's updates and a symbol's fills are never applied concurrently. pybit reconnects and
re-authenticates by itself; what a gap may have lost, periodic reconciliation brings back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from services.common.bybit import BybitVenue
from services.execution import account_book
from services.execution.account_book import Changes
from services.execution.credentials import ApiKey
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.stream")
TOPICS = ("order", "execution", "position", "wallet")
APPLY = {
    "order": account_book.apply_order,
    "execution": account_book.apply_execution,
    "position": account_book.apply_position,
    "wallet": account_book.apply_wallet,
}
Publish = Callable[[Changes], Awaitable[None]]
RETRIES = 10  # pybit's reconnect attempts after a drop (0 would block its constructor forever when down)
OPEN_TIMEOUT_SECONDS = 30.0
Message = tuple[str, str, str, list[dict[str, Any]]]  # tenant, mode, topic, rows


class AccountStream:
    """One tenant's pybit private WebSocket on its account of one mode (LIVE or PAPER)."""

    def __init__(
        self,
        venue: BybitVenue,
        tenant_id: str,
        mode: str,
        key: ApiKey,
        deliver: Callable[[Message], None],
    ) -> None:
        self.venue = venue
        self.tenant_id = tenant_id
        self.mode = mode
        self.key = key
        self._deliver = deliver
        self._ws: Any = None

    def _callback(self, message: dict[str, Any]) -> None:
        topic = str(message.get("topic", ""))
        rows = message.get("data") or []
        if topic in TOPICS and isinstance(rows, list):
            self._deliver((self.tenant_id, self.mode, topic, rows))

    def _open(self) -> Any:
        ws = self.venue.websocket(
            "private",
            self.key.api_key,
            self.key.api_secret,
            restart_on_error=True,
            retries=RETRIES,
            ping_interval=20,
        )
        for topic in TOPICS:
            getattr(ws, f"{topic}_stream")(self._callback)
        return ws

    async def start(self) -> None:
        # pybit connects, authenticates and waits for its subscriptions inside these calls; a daemon
        # thread, so an exchange that never answers cannot hold up the process's shutdown.
        self._ws = await asyncio.wait_for(_in_daemon_thread(self._open), OPEN_TIMEOUT_SECONDS)

    async def stop(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            ws.handle_error = False  # pybit would otherwise reconnect on the error a close may raise
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_in_daemon_thread(ws.exit), 5.0)


def _in_daemon_thread(fn: Callable[[], Any]) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        try:
            result = fn()
        except BaseException as error:  # handed to the awaiting task, whatever it is
            loop.call_soon_threadsafe(_settle, future, None, error)
        else:
            loop.call_soon_threadsafe(_settle, future, result, None)

    threading.Thread(target=run, daemon=True, name="bybit-private-ws").start()
    return future


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting: close what was opened too late
        if hasattr(result, "exit"):
            threading.Thread(target=result.exit, daemon=True).start()
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class StreamWorkers:
    """Queues stream messages per tenant-hash and applies them in order."""

    def __init__(self, store: Store, publish: Publish, workers: int = 8) -> None:
        self.store = store
        self.publish = publish
        self.queues: list[asyncio.Queue[Message]] = [asyncio.Queue() for _ in range(workers)]
        self.tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.applied = 0
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}
        # Tenants whose data was deleted: messages still queued for them are dropped, not applied.
        self.erased: set[str] = set()

    def lock(self, tenant_id: str, mode: str) -> asyncio.Lock:
        """Held while an account's messages or its reconciliation are applied: never both at once."""
        return self.locks.setdefault((tenant_id, mode), asyncio.Lock())

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.tasks = [
            asyncio.create_task(self._run(q), name=f"stream-worker-{i}") for i, q in enumerate(self.queues)
        ]

    def deliver(self, message: Message) -> None:
        """Thread-safe: called on pybit's thread."""
        assert self.loop is not None
        queue = self.queues[zlib.crc32(message[0].encode()) % len(self.queues)]
        self.loop.call_soon_threadsafe(queue.put_nowait, message)

    async def _run(self, queue: asyncio.Queue[Message]) -> None:
        while True:
            tenant_id, mode, topic, rows = await queue.get()
            if tenant_id in self.erased:
                continue
            try:
                async with self.lock(tenant_id, mode):
                    changes = await self.store.run(
                        functools.partial(_apply, tenant_id=tenant_id, mode=mode, topic=topic, rows=rows)
                    )
                self.applied += 1
                await self.publish(changes)
            except Exception:
                log.exception(
                    "stream message not applied; reconciliation will repair", extra={"tenant_id": tenant_id}
                )

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _apply(session: Any, *, tenant_id: str, mode: str, topic: str, rows: list[dict[str, Any]]) -> Changes:
    changes = Changes()
    apply = APPLY[topic]
    if topic == "execution":
        rows = sorted(rows, key=lambda r: int(str(r.get("seq") or 0)))
    for row in rows:
        apply(session, tenant_id, mode, row, changes)
    return changes
