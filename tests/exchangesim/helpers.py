"""Shared helpers: signed raw requests and waiting on stream messages from pybit's threads."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from services.exchangesim.accounts import ApiKey


def signed_headers(
    key: ApiKey, payload: str, timestamp: int | None = None, window: int = 5000
) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    sig = hmac.new(
        key.secret.encode(), f"{ts}{key.key}{window}{payload}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "X-BAPI-API-KEY": key.key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": str(window),
        "X-BAPI-SIGN": sig,
        "Content-Type": "application/json",
    }


async def post(
    http: aiohttp.ClientSession, base: str, key: ApiKey, path: str, body: dict[str, Any], **kw: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    raw = json.dumps(body)
    headers = signed_headers(key, raw, **kw)
    async with http.post(base + path, data=raw, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def get(
    http: aiohttp.ClientSession, base: str, key: ApiKey | None, path: str, query: str, **kw: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = signed_headers(key, query, **kw) if key else {}
    async with http.get(f"{base}{path}?{query}", headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


async def in_own_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking pybit code in a thread of its own: a thread stuck in pybit can then never starve
    the event loop's shared executor, which the rest of the suite needs."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="pybit-test")
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    finally:
        pool.shutdown(wait=False)


def close_streams(*streams: Any, timeout: float = 5.0) -> None:
    """Close pybit WebSockets without risking a hang: pybit's exit() waits for the socket with no limit."""
    closers = [threading.Thread(target=stream.exit, daemon=True) for stream in streams]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(timeout)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll (from a worker thread) until predicate() is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
