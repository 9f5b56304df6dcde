"""Database access off the event loop: SQLAlchemy is synchronous, so every unit of work runs in a small
thread pool of its own (separate from the exchange pool, so slow exchange calls never starve the
database work that records their outcomes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session

T = TypeVar("T")


class Store:
    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="db")

    def _in_session(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session:
            result = work(session)
            session.commit()
            return result

    async def run(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in one transaction, committed when it returns."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._in_session, work)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.engine.dispose()
