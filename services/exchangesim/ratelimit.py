"""Rate limits: per UID per endpoint per rolling second, and per client IP (600 / 5 s, then a ban).

Every answer carries X-Bapi-Limit, X-Bapi-Limit-Status and X-Bapi-Limit-Reset-Timestamp; the reset
timestamp always lies in the future (pybit sleeps until it and fails on a past one).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

# Requests per rolling second per UID, by (path, category); "" matches any category.
ENDPOINT_LIMITS = {
    ("/v5/order/create", "linear"): 10,
    ("/v5/order/create", "spot"): 20,
    ("/v5/order/amend", ""): 10,
    ("/v5/order/cancel", ""): 10,
    ("/v5/order/cancel-all", ""): 10,
    ("/v5/position/set-leverage", ""): 10,
    ("/v5/position/trading-stop", ""): 10,
}
DEFAULT_LIMIT = 50
MIN_RESET_AHEAD_MS = 50


@dataclass(frozen=True)
class Status:
    limit: int
    remaining: int
    reset_ms: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-Bapi-Limit": str(self.limit),
            "X-Bapi-Limit-Status": str(max(self.remaining, 0)),
            "X-Bapi-Limit-Reset-Timestamp": str(self.reset_ms),
        }


class Window:
    """Timestamps of recent hits in a rolling window."""

    def __init__(self) -> None:
        self.hits: collections.deque[float] = collections.deque()

    def hit(self, now: float, span: float, limit: int) -> Status:
        while self.hits and self.hits[0] <= now - span:
            self.hits.popleft()
        allowed = len(self.hits) < limit
        if allowed:
            self.hits.append(now)
        oldest = self.hits[0] if self.hits else now
        reset = max(int((oldest + span) * 1000), int(now * 1000) + MIN_RESET_AHEAD_MS)
        return Status(limit, limit - len(self.hits), reset, allowed)


class RateLimiter:
    def __init__(self, ip_limit: int = 600, ip_window_s: float = 5.0, ban_s: float = 600.0) -> None:
        self.ip_limit = ip_limit
        self.ip_window_s = ip_window_s
        self.ban_s = ban_s
        self._ips: dict[str, Window] = collections.defaultdict(Window)
        self._banned: dict[str, float] = {}
        self._keys: dict[tuple[int, str, str], Window] = collections.defaultdict(Window)

    def reset(self) -> None:
        self._ips.clear()
        self._banned.clear()
        self._keys.clear()

    def banned_until(self, ip: str) -> float | None:
        until = self._banned.get(ip)
        if until is not None and until <= time.time():
            del self._banned[ip]
            return None
        return until

    def hit_ip(self, ip: str) -> Status:
        now = time.time()
        status = self._ips[ip].hit(now, self.ip_window_s, self.ip_limit)
        if not status.allowed:
            self._banned[ip] = now + self.ban_s
        return status

    def hit_key(self, uid: int, path: str, category: str) -> Status:
        limit = ENDPOINT_LIMITS.get((path, category)) or ENDPOINT_LIMITS.get((path, ""), DEFAULT_LIMIT)
        scope = category if (path, category) in ENDPOINT_LIMITS else ""
        return self._keys[(uid, path, scope)].hit(time.time(), 1.0, limit)
