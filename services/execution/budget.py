"""Request budgets: Bybit's limits per API key and endpoint and per egress IP, kept before we send.

Bybit counts order creation per UID per rolling second (10/s linear, 20/s spot, 50/s for queries) and
all requests per IP (600 per 5 s, then a 403 and a ten-minute ban). Every tenant's requests leave
through the same egress address, so the IP budget is shared by all of them: one tenant's burst must
not get everybody banned. A 10006 answer parks that key until the reset time Bybit sends in
`X-Bapi-Limit-Reset-Timestamp`; a 403 parks the whole address.

Everything runs on the event loop, so check-and-take needs no lock.
"""

from __future__ import annotations

import asyncio
import collections
import time

# Requests per rolling second per key, by (endpoint, category); "" matches any category.
KEY_LIMITS = {
    ("order/create", "linear"): 10,
    ("order/create", "spot"): 20,
    ("order/cancel", ""): 10,
    ("position/set-leverage", ""): 10,
    ("position/trading-stop", ""): 10,
}
DEFAULT_KEY_LIMIT = 50
IP_BAN_BACKOFF_SECONDS = 60.0


class _Window:
    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self.hits: collections.deque[float] = collections.deque()

    def wait_time(self, now: float) -> float:
        while self.hits and self.hits[0] <= now - self.span:
            self.hits.popleft()
        if len(self.hits) < self.limit:
            return 0.0
        return self.hits[0] + self.span - now

    def take(self, now: float) -> None:
        self.hits.append(now)


class RequestBudget:
    def __init__(self, ip_limit: int, ip_window_seconds: float) -> None:
        self._ip = _Window(ip_limit, ip_window_seconds)
        self._keys: dict[tuple[str, str, str], _Window] = {}
        self._key_parked: dict[str, float] = {}
        self._ip_parked = 0.0
        self.waits = 0  # how often a request had to wait for budget (exported as a metric)

    def _key_window(self, key: str, endpoint: str, category: str) -> _Window:
        scope = category if (endpoint, category) in KEY_LIMITS else ""
        limit = KEY_LIMITS.get((endpoint, scope), DEFAULT_KEY_LIMIT)
        window = self._keys.get((key, endpoint, scope))
        if window is None:
            window = self._keys[(key, endpoint, scope)] = _Window(limit, 1.0)
        return window

    async def acquire(self, key: str, endpoint: str, category: str = "") -> None:
        """Wait until one more request of `key` to `endpoint` fits every budget, then take it."""
        window = self._key_window(key, endpoint, category)
        while True:
            now = time.monotonic()
            wait = max(
                window.wait_time(now),
                self._ip.wait_time(now),
                self._key_parked.get(key, 0.0) - now,
                self._ip_parked - now,
            )
            if wait <= 0:
                window.take(now)
                self._ip.take(now)
                return
            self.waits += 1
            await asyncio.sleep(min(wait, 1.0))

    def park_key(self, key: str, reset_ms: int | None) -> None:
        """After 10006: no request of this key until Bybit's reset time (or one second if none came)."""
        wall_wait = (reset_ms / 1000 - time.time()) if reset_ms else 1.0
        until = time.monotonic() + min(max(wall_wait, 0.05), 10.0)
        self._key_parked[key] = max(self._key_parked.get(key, 0.0), until)

    def park_ip(self) -> None:
        """After a 403: the address is banned; stop everything for a while rather than extend the ban."""
        self._ip_parked = time.monotonic() + IP_BAN_BACKOFF_SECONDS
