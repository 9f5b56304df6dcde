"""Who needs which candle streams, under leases.

Each caller (a strategy replica via EnsureSubscriptions or the control subject, an open StreamCandles
call) holds a set of streams until its lease expires or is released; the service keeps open exactly
the union of what unexpired leases hold. Callers' leases are stored, so after a restart the service
resumes (and repairs) the same streams without waiting for every caller to renew; StreamCandles'
leases live only as long as their call and are not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.marketdata.domain import StreamKey
from services.marketdata.store import Store

DEFAULT_TTL = timedelta(minutes=2)
MIN_TTL = timedelta(seconds=30)
MAX_TTL = timedelta(minutes=10)


@dataclass
class Lease:
    keys: frozenset[StreamKey]
    expires_at: datetime
    stored: bool


def now_utc() -> datetime:
    return datetime.now(UTC)


class Demand:
    def __init__(self, store: Store | None) -> None:
        self._store = store
        self._leases: dict[str, Lease] = {}

    async def load(self) -> None:
        """Take over the unexpired leases stored before a restart."""
        if self._store is None:
            return
        held: dict[str, tuple[set[StreamKey], datetime]] = {}
        for caller, key, expires_at in await self._store.leases(now_utc()):
            keys, _ = held.setdefault(caller, (set(), expires_at))
            keys.add(key)
        for caller, (keys, expires_at) in held.items():
            self._leases[caller] = Lease(frozenset(keys), expires_at, stored=True)

    async def ensure(
        self, caller: str, keys: Iterable[StreamKey], ttl: timedelta, *, store: bool = True
    ) -> datetime:
        """Replace `caller`'s set; returns when the lease expires unless renewed."""
        wanted = frozenset(keys)
        expires_at = now_utc() + ttl
        if store and self._store is not None:
            await self._store.replace_lease(caller, wanted, expires_at)
        if wanted:
            self._leases[caller] = Lease(wanted, expires_at, stored=store)
        else:
            self._leases.pop(caller, None)
        return expires_at

    async def release(self, caller: str) -> int:
        lease = self._leases.pop(caller, None)
        if lease is not None and lease.stored and self._store is not None:
            await self._store.replace_lease(caller, (), now_utc())
        return 0 if lease is None else len(lease.keys)

    async def expire(self) -> bool:
        """Drop expired leases; True when any was dropped."""
        now = now_utc()
        expired = [caller for caller, lease in self._leases.items() if lease.expires_at <= now]
        for caller in expired:
            await self.release(caller)
        return bool(expired)

    def wanted(self) -> set[StreamKey]:
        return {key for lease in self._leases.values() for key in lease.keys}
