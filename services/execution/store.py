"""Database access off the event loop: SQLAlchemy is synchronous, so every unit of work runs in a small
thread pool of its own (separate from the exchange pool, so slow exchange calls never starve the
database work that records their outcomes).

`grouped` is group commit: units of work submitted while a transaction is in flight are run together
in the next one. A thousand signals on one candle then cost a few dozen transactions instead of
thousands, which is what lets one process keep up (docs/decisions/0031-execution-concurrency.md).
If a grouped transaction fails, its units are retried one by one, so each failure reaches only its
own caller.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

T = TypeVar("T")
Work = Callable[[Session], Any]


class Group:
    """Collects submissions while a batch is being run; one runner at a time."""

    def __init__(
        self, run_batch: Callable[[list[Any]], list[tuple[bool, Any]]], pool: ThreadPoolExecutor
    ) -> None:
        self._run_batch = run_batch
        self._pool = pool
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                results = await loop.run_in_executor(self._pool, self._run_batch, [item for item, _ in batch])
            except Exception as error:  # the pool itself failed (shutdown): tell every caller
                results = [(False, error)] * len(batch)
            for (_, future), (ok, value) in zip(batch, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)


class Store:
    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="db")
        self._writes = Group(self._run_many, self.pool)

    def _in_session(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session:
            result = work(session)
            session.commit()
            return result

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction, committed when it returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._in_session, work)

    async def grouped(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in a transaction shared with other concurrent callers (group commit)."""
        result: T = await self._writes.submit(work)
        return result

    def group(
        self, run_batch: Callable[[Session, list[Any]], list[Any]], *, one_by_one: bool = False
    ) -> Group:
        """A group for set-based work: `run_batch(session, items)` answers every item in one go.
        `one_by_one`: if the batch fails, each item is tried alone (in its own transaction), so a
        bad item fails only its own caller."""

        def run(items: list[Any]) -> list[tuple[bool, Any]]:
            try:
                return [(True, value) for value in self._in_session(lambda s: run_batch(s, items))]
            except Exception as error:
                if not one_by_one or len(items) == 1:
                    return [(False, error)] * len(items)
            results: list[tuple[bool, Any]] = []
            for item in items:
                try:
                    results.append((True, self._in_session(functools.partial(_first, run_batch, item))))
                except Exception as error:
                    results.append((False, error))
            return results

        return Group(run, self.pool)

    def _run_many(self, works: list[Work]) -> list[tuple[bool, Any]]:
        try:
            values = self._in_session(lambda s: [work(s) for work in works])
        except Exception:  # retried one by one below, so each failure reaches only its caller
            values = None
        if values is not None:
            return [(True, value) for value in values]
        results: list[tuple[bool, Any]] = []
        for work in works:
            try:
                results.append((True, self._in_session(work)))
            except Exception as error:
                results.append((False, error))
        return results

    def close(self) -> None:
        # Not waiting: a unit of work cut off here is one whose outcome was never acknowledged, and
        # the next start resumes it (crash-only); the event loop must not block on it.
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


def _first(run_batch: Callable[[Session, list[Any]], list[Any]], item: Any, session: Session) -> Any:
    return run_batch(session, [item])[0]
