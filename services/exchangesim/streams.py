"""What public and private streams share: one connection's outbox, its read loop and heartbeat replies."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)
OUTBOX_LIMIT = 20_000
_conn_ids = itertools.count(1)


class Connection:
    """One WebSocket client: subscriptions plus a queue drained by its own writer task."""

    def __init__(self, ws: web.WebSocketResponse, private: bool) -> None:
        self.ws = ws
        self.private = private
        self.conn_id = f"sim{next(_conn_ids):08d}-{'priv' if private else 'pub'}"
        self.topics: set[str] = set()
        self.uid: int | None = None
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX_LIMIT)
        self._writer = asyncio.get_running_loop().create_task(self._write())

    def send(self, text: str) -> None:
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("stream %s is too slow; closing it", self.conn_id)
            self.drop()

    def send_json(self, payload: dict[str, Any]) -> None:
        self.send(json.dumps(payload, separators=(",", ":")))

    def drop(self, abort: bool = False) -> None:
        """Close at once: a close frame (the client sees a closed connection) or a TCP abort."""
        if abort and self.ws._req is not None and self.ws._req.transport is not None:
            self.ws._req.transport.abort()
            return
        asyncio.get_running_loop().create_task(
            self.ws.close(code=1001, message=b"server closed the connection")
        )

    async def _write(self) -> None:
        while True:
            text = await self._outbox.get()
            if text is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def finish(self) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer


Handler = Callable[[Connection, dict[str, Any]], Awaitable[None] | None]


async def serve(
    request: web.Request,
    *,
    private: bool,
    idle_timeout: float,
    on_open: Callable[[Connection], None],
    on_message: Handler,
    on_close: Callable[[Connection], None],
) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True)
    await ws.prepare(request)
    conn = Connection(ws, private)
    on_open(conn)
    try:
        while True:
            try:
                msg = await ws.receive(timeout=idle_timeout)
            except TimeoutError:
                log.info("stream %s idle for %.0fs; closing", conn.conn_id, idle_timeout)
                await ws.close(code=1000, message=b"idle timeout")
                break
            if msg.type != WSMsgType.TEXT:
                break
            try:
                payload = json.loads(msg.data)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                conn.send_json(
                    {
                        "success": False,
                        "ret_msg": "Invalid request: not a JSON object",
                        "conn_id": conn.conn_id,
                        "op": "",
                    }
                )
                continue
            result = on_message(conn, payload)
            if result is not None:
                await result
    finally:
        on_close(conn)
        await conn.finish()
        if not ws.closed:
            await ws.close()
    return ws
