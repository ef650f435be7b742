"""The async wrapper: one thread owns the connection, the event loop never blocks on SQLite."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import structlog

from device.clock import SYSTEM_CLOCK, Clock
from device.store.database import Store
from device.store.records import Retention, StoreError

P = ParamSpec("P")
T = TypeVar("T")
log = structlog.get_logger(__name__)


class AsyncStore:
    """An async facade: one worker thread owns the connection and runs calls in order."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._store: Store | None = None

    async def open(self) -> AsyncStore:
        self._store = await self._run(Store, self.path, self.retention)
        return self

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def call(self, method: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``Store.<method>`` on the worker: ``await store.call(Store.insert_readings, batch)``.

        Typed through the method's signature, so mypy checks the arguments of every store call.
        """
        if self._store is None:
            raise StoreError("store is not open")
        store = self._store
        return await self._run(method, store, *args, **kwargs)

    async def housekeeping(self, interval_s: float = 300.0, clock: Clock = SYSTEM_CLOCK) -> None:
        """Background task: derive energy slots and apply the retention policy, forever."""
        while True:
            now = clock.time()
            try:
                await self.call(Store.update_energy_slots, now)
                await self.call(Store.prune, now)
            except (sqlite3.Error, OSError, StoreError) as exc:
                log.error("store_housekeeping_failed", error=str(exc))
            await clock.sleep(interval_s)

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.close)
            self._store = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> AsyncStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
