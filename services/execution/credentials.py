"""Tenants' exchange keys, read from Vault (KV v2 `tenants/<tenant_id>/exchange`) and cached briefly;
the same cache serves paper accounts' keys (`paper/<tenant_id>/exchange`, see paper.py), which it
provisions on first need.

Only this service's Vault policy may read them. They live in memory only: never in the database,
logs, events or errors (the key object's repr hides both values). A rotation arrives as an
`ExchangeCredentialsChanged` event carrying only the new Vault version; the cache entry is dropped
and the next use reads that version.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hvac

from services.common.vault import SecretStore


@dataclass(frozen=True)
class ApiKey:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    version: int = 0

    @property
    def key_id(self) -> str:
        """A stable, non-secret name for the key (budgets, logs): a short hash of the public key."""
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:12]


def secret_path(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/exchange"


# Opens an account for the tenant and stores its key at the path; returns the key now stored there.
# `replace` overwrites a key already stored (paper accounts only; see paper.py).
Provision = Callable[[SecretStore, str, str, bool], dict[str, Any]]


class CredentialCache:
    def __init__(
        self,
        store: Callable[[], SecretStore] | None,
        ttl_seconds: float,
        *,
        path: Callable[[str], str] = secret_path,
        provision: Provision | None = None,
    ) -> None:
        self._store_factory = store
        self._path = path
        self._provision = provision
        self._store: SecretStore | None = None
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._pinned: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[ApiKey | None]] = {}
        self._generation: dict[str, int] = {}  # bumped by changed(): a read begun before is stale

    def _secrets(self) -> SecretStore | None:
        if self._store is None and self._store_factory is not None:
            self._store = self._store_factory()
        return self._store

    def _read(self, tenant_id: str, version: int | None) -> ApiKey | None:
        store = self._secrets()
        if store is None:
            return None
        data = store.read(self._path(tenant_id), version=version)
        if not data and self._provision is not None:
            data = self._provision(store, self._path(tenant_id), tenant_id, False)
        if not data or not data.get("api_key") or not data.get("api_secret"):
            return None
        return ApiKey(str(data["api_key"]), str(data["api_secret"]), version or 0)

    async def get(self, tenant_id: str) -> ApiKey | None:
        """The tenant's current key, or None when none is stored (or Vault cannot be reached).

        A key past its TTL is still served while it is read again in the background: rotations and
        deletions arrive as events and drop the entry at once, so the TTL is only a safety net, and
        a candle's thousand signals must not wait for a thousand Vault reads."""
        hit = self._cache.get(tenant_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        if hit is not None and hit[1] is not None:
            self._refresh_later(tenant_id)
            return hit[1]
        return await self._load(tenant_id)

    def _refresh_later(self, tenant_id: str) -> None:
        if tenant_id in self._refreshing:
            return
        task = asyncio.create_task(self._load(tenant_id, keep_on_error=True), name=f"key-refresh:{tenant_id}")
        self._refreshing[tenant_id] = task
        task.add_done_callback(lambda _: self._refreshing.pop(tenant_id, None))

    async def _load(self, tenant_id: str, *, keep_on_error: bool = False) -> ApiKey | None:
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            hit = self._cache.get(tenant_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
            generation = self._generation.get(tenant_id, 0)
            try:
                key = await asyncio.to_thread(self._read, tenant_id, self._pinned.get(tenant_id))
            except Exception:  # Vault down: a short negative cache, so a signal is skipped, not stuck
                stale = self._cache.get(tenant_id)
                if keep_on_error and stale is not None:  # a background refresh: keep serving the key
                    self._cache[tenant_id] = (time.monotonic() + 1.0, stale[1])
                    return stale[1]
                self._cache[tenant_id] = (time.monotonic() + 1.0, None)
                return None
            if generation != self._generation.get(tenant_id, 0):
                return key  # the key changed while this read ran: let the next get read it afresh
            self._cache[tenant_id] = (time.monotonic() + self._ttl, key)
            return key

    def changed(self, tenant_id: str, version: int) -> None:
        """Forget the cached key; read `version` next time (0: latest, e.g. after a delete)."""
        self._cache.pop(tenant_id, None)
        self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1
        if version:
            self._pinned[tenant_id] = version
        else:
            self._pinned.pop(tenant_id, None)

    async def replace(self, tenant_id: str) -> ApiKey | None:
        """Provision a new account for the tenant, replacing the stored key (a paper key the
        simulator no longer knows, e.g. after it restarted with empty memory)."""
        store = self._secrets()
        if store is None or self._provision is None:
            return None
        self._cache.pop(tenant_id, None)
        async with self._locks.setdefault(tenant_id, asyncio.Lock()):
            data = await asyncio.to_thread(self._provision, store, self._path(tenant_id), tenant_id, True)
            key = ApiKey(str(data["api_key"]), str(data["api_secret"]))
            self._cache[tenant_id] = (time.monotonic() + self._ttl, key)
            return key

    async def erase(self, tenant_id: str) -> None:
        """Forget the tenant's key and destroy it in Vault if this service provisioned it (paper
        accounts); a key the tenant stored through tenants is tenants' to destroy (DeleteTenant)."""
        self._cache.pop(tenant_id, None)
        self._pinned.pop(tenant_id, None)
        store = self._secrets()
        if store is None or self._provision is None:
            return
        async with self._locks.setdefault(tenant_id, asyncio.Lock()):
            with contextlib.suppress(hvac.exceptions.InvalidPath):  # never provisioned, or destroyed
                await asyncio.to_thread(store.destroy, self._path(tenant_id))
