"""Failed-login backoff: after a few failures an account is locked for a while, longer each time.

The state of real accounts is kept on the user row, so every replica agrees. Unknown emails get the
same treatment in memory (bounded), so a lockout answer does not reveal whether an email has an account.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta

FREE_FAILURES = 5  # failures allowed before the first lock
BASE_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)


def lock_after(failures: int) -> timedelta | None:
    """How long to lock after `failures` consecutive failures; None below the threshold."""
    if failures < FREE_FAILURES:
        return None
    return min(BASE_LOCK * 2 ** (failures - FREE_FAILURES), MAX_LOCK)


def retry_seconds(locked_until: datetime | None, now: datetime) -> int:
    if locked_until is None or locked_until <= now:
        return 0
    return max(1, int((locked_until - now).total_seconds() + 0.999))


class UnknownEmails:
    """Failures against emails with no account, for the same answers as real accounts get."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._state: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()
        self._capacity = capacity

    def retry_seconds(self, email: str) -> int:
        _, until = self._state.get(email, (0, None))
        return retry_seconds(until, datetime.now(UTC))

    def fail(self, email: str) -> None:
        failures, _ = self._state.pop(email, (0, None))
        failures += 1
        lock = lock_after(failures)
        self._state[email] = (failures, datetime.now(UTC) + lock if lock else None)
        while len(self._state) > self._capacity:
            self._state.popitem(last=False)
