"""Active tenants' accounts of one mode: their exchange session, their private stream, and whether they
have been reconciled since this process started (no order is placed for a tenant before that).

There is one `Accounts` per mode: LIVE (the tenant's own keys on the configured Bybit) and PAPER (an
account execution opens for the tenant on the simulator, paper.py); their state never mixes.
A tenant's account becomes active when a bot of that mode appears, when their credentials are stored
(LIVE), or at their first signal of that mode; it stays active across restarts (exec_account.active).
Credentials are read from Vault through the cache; a rotation rebuilds the session and the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from services.common.bybit import BybitVenue
from services.execution import models
from services.execution.account_stream import AccountStream, StreamWorkers
from services.execution.brackets import Brackets
from services.execution.credentials import ApiKey, CredentialCache
from services.execution.events import Events
from services.execution.exchange import INVALID_KEY, AccountClient, Exchange, ExchangeError
from services.execution.flatten import Flattener
from services.execution.reconcile import Reconciler
from services.execution.store import Store

log = logging.getLogger("tradebot.execution.accounts")


@dataclass
class TenantAccount:
    key: ApiKey | None = None
    client: AccountClient | None = None
    stream: AccountStream | None = None
    reconciled: bool = False
    ready: asyncio.Lock = field(default_factory=asyncio.Lock)


class Accounts:
    def __init__(
        self,
        *,
        venue: BybitVenue,
        exchange: Exchange,
        credentials: CredentialCache,
        store: Store,
        reconciler: Reconciler,
        workers: StreamWorkers,
        events: Events,
        streams_enabled: bool,
        mode: str = "LIVE",
    ) -> None:
        self.mode = mode
        self.venue = venue
        self.exchange = exchange
        self.credentials = credentials
        self.store = store
        self.reconciler = reconciler
        self.workers = workers
        self.events = events
        self.streams_enabled = streams_enabled
        self.tenants: dict[str, TenantAccount] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stopped = False  # no background work is started once stopping has begun
        self._erased: set[str] = set()  # tenants whose data was deleted (data_rights.py)
        # Moves filled entries' stop and target to the fill (brackets.py).
        self.brackets: Brackets | None = None
        # Closes again what an engaged close_positions kill switch still finds open (flatten.py).
        self.flattener: Flattener | None = None

    def _state(self, tenant_id: str) -> TenantAccount:
        return self.tenants.setdefault(tenant_id, TenantAccount())

    def is_ready(self, tenant_id: str) -> bool:
        state = self.tenants.get(tenant_id)
        return state is not None and state.reconciled

    async def client(self, tenant_id: str) -> AccountClient | None:
        """The tenant's session with its current key, or None without credentials."""
        if tenant_id in self._erased:
            return None
        key = await self.credentials.get(tenant_id)
        state = self._state(tenant_id)
        if key is None:
            return None
        if state.key != key or state.client is None:
            rotated = state.key is not None
            state.key = key
            state.client = self.exchange.account(key.key_id, key.api_key, key.api_secret)
            if rotated and state.stream is not None:
                await self._restart_stream(tenant_id, key)
        return state.client

    async def ensure_ready(self, tenant_id: str) -> AccountClient | None:
        """Credentials present and account reconciled: the conditions for an order. The private stream
        is opened alongside (orders do not wait for it); once it is up, one more reconciliation
        covers whatever happened before it was. Raises ExchangeError when reconciliation cannot
        reach the exchange."""
        client = await self.client(tenant_id)
        if client is None or tenant_id in self._erased:  # erased while the key was being read
            return None
        state = self._state(tenant_id)
        if state.reconciled:
            return client
        async with state.ready:
            if not state.reconciled:
                await self._mark_active(tenant_id, True)
                if state.key is not None and state.stream is None and self.streams_enabled:
                    self._background_task(self._open_stream(tenant_id, state.key), f"stream:{tenant_id}")
                client = await self._first_reconcile(tenant_id, client)
                state.reconciled = True
                _settle_memory()
        return client

    async def _first_reconcile(self, tenant_id: str, client: AccountClient) -> AccountClient:
        try:
            await self.reconcile(tenant_id, client)
        except ExchangeError as error:
            if self.mode != "PAPER" or error.code != INVALID_KEY:
                raise
            # The simulator forgot the paper account (it keeps accounts in memory and restarted):
            # open a new one; the stored PAPER state is corrected to it by this reconciliation.
            log.warning(
                "paper account unknown to the simulator; opening a new one", extra={"tenant_id": tenant_id}
            )
            await self.credentials.replace(tenant_id)
            replaced = await self.client(tenant_id)
            if replaced is None:
                raise
            client = replaced
            await self.reconcile(tenant_id, client)
        return client

    async def _open_stream(self, tenant_id: str, key: ApiKey) -> None:
        await self._restart_stream(tenant_id, key)
        if self._state(tenant_id).stream is not None:
            try:
                await self.reconcile(tenant_id)
            except ExchangeError as error:
                log.warning("reconciliation after the stream opened failed: %s", error.message)

    def _background_task(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._stopped:
            work.close()
            return
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reconcile(self, tenant_id: str, client: AccountClient | None = None) -> None:
        client = client or await self.client(tenant_id)
        if client is None:
            return
        async with self.workers.lock(tenant_id, self.mode):
            if tenant_id in self._erased:  # erased while waiting for the lock
                return
            changes = await self.reconciler.run(tenant_id, self.mode, client)
        await self.events.changes(changes)
        # After every reconciliation (each retries what the last one left undone): fill-based stops
        # and targets, and closing what an engaged close_positions kill switch still finds open.
        for what, step in (
            ("fill-based stop and target not set yet", self.brackets),
            ("closing positions under a kill switch failed", self.flattener),
        ):
            if step is None:
                continue
            try:
                await step.settle(tenant_id, self.mode, client)
            except Exception as error:  # logged; the next reconciliation tries again
                log.warning(
                    "%s: %s",
                    what,
                    getattr(error, "message", type(error).__name__),
                    extra={"tenant_id": tenant_id, "mode": self.mode},
                )

    async def _restart_stream(self, tenant_id: str, key: ApiKey) -> None:
        if not self.streams_enabled:
            return
        state = self._state(tenant_id)
        if state.stream is not None:
            await state.stream.stop()
        stream = AccountStream(self.venue, tenant_id, self.mode, key, self.workers.deliver)
        try:
            await stream.start()
        except Exception:  # pybit gave up connecting: reconciliation still keeps the account right
            log.warning("private stream not started", extra={"tenant_id": tenant_id})
            return
        state.stream = stream

    async def _mark_active(self, tenant_id: str, active: bool) -> None:
        if tenant_id in self._erased:  # work begun before the deletion must not bring a row back
            return

        def work(session: Session) -> None:
            row = session.get(models.Account, (tenant_id, self.mode)) or models.Account(
                tenant_id=tenant_id, mode=self.mode
            )
            row.active = active
            session.add(row)

        await self.store.run(work)

    def activate(self, tenant_id: str) -> None:
        """Make the tenant ready in the background (a bot of this mode started, credentials were stored)."""
        self._background_task(self._activate(tenant_id), f"activate:{tenant_id}")

    async def _activate(self, tenant_id: str) -> None:
        try:
            await self.ensure_ready(tenant_id)
        except ExchangeError as error:
            log.warning(
                "account not ready yet: %s", error.message, extra={"tenant_id": tenant_id, "mode": self.mode}
            )
        except Exception as error:  # e.g. the simulator cannot open a paper account right now
            log.warning("account not ready yet: %s", error, extra={"tenant_id": tenant_id, "mode": self.mode})

    async def credentials_changed(self, tenant_id: str, version: int, deleted: bool) -> None:
        self.credentials.changed(tenant_id, 0 if deleted else version)
        state = self._state(tenant_id)
        if deleted:
            if state.stream is not None:
                await state.stream.stop()
            self.tenants.pop(tenant_id, None)
            await self._mark_active(tenant_id, False)
            return
        await self.client(tenant_id)  # rebuilds session and stream with the new key
        self.activate(tenant_id)

    async def erase(self, tenant_id: str) -> None:
        """The tenant's data is being deleted: close its stream, forget its key and session, destroy a
        key this service provisioned, and never open its account again in this process."""
        self._erased.add(tenant_id)
        self.workers.erased.add(tenant_id)
        state = self.tenants.get(tenant_id)
        await self.credentials_changed(tenant_id, 0, deleted=True)
        await self.credentials.erase(tenant_id)
        if state is not None:
            async with state.ready:  # a first reconciliation under way writes its rows before the erasure
                pass
        # So does a periodic reconciliation or a stream message being applied; later ones see the mark.
        async with self.workers.lock(tenant_id, self.mode):
            pass

    async def start(self, concurrency: int = 16) -> None:
        """Bring every account that was active before the restart back, reconciling each first."""
        A = models.Account
        active = await self.store.run(
            lambda s: list(s.exec(select(A.tenant_id).where(A.active, A.mode == self.mode)).all())
        )
        gate = asyncio.Semaphore(concurrency)

        async def one(tenant_id: str) -> None:
            async with gate:
                await self._activate(tenant_id)

        task = asyncio.create_task(self._gather([one(t) for t in active]), name="accounts-start")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _gather(jobs: list[Coroutine[Any, Any, None]]) -> None:
        await asyncio.gather(*jobs, return_exceptions=True)

    async def reconcile_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for tenant_id, state in list(self.tenants.items()):
                if not state.reconciled:
                    continue
                try:
                    await self.reconcile(tenant_id)
                except ExchangeError as error:
                    log.warning(
                        "periodic reconciliation failed: %s", error.message, extra={"tenant_id": tenant_id}
                    )
                except Exception:
                    log.exception("periodic reconciliation failed", extra={"tenant_id": tenant_id})

    async def stop(self) -> None:
        self._stopped = True
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for state in self.tenants.values():
            if state.stream is not None:
                await state.stream.stop()


def _settle_memory() -> None:
    """An account's session, key and caches live as long as the process: take them out of the
    cyclic garbage collector's reach once its first reconciliation is done. Without this, a full
    collection walks every tenant's long-lived objects, and one landing on a busy candle stalled
    the event loop for 0.4-1 s of the 2-4 s a thousand signals took (bench/execution.py). Young
    garbage is collected first (cheap), so only what is alive is frozen."""
    gc.collect(1)
    gc.freeze()
