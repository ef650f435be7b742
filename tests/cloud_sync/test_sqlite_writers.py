"""SQLite's write lock under cancellation: a writer cancelled while it waits for the lock (a client
gone mid-request, a job stopped at shutdown) must not take the lock afterwards and keep it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from cloud_sync.db import connect


async def test_a_writer_cancelled_while_waiting_for_the_lock_does_not_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    db = await connect(str(path))
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another instance
    try:
        other.execute("BEGIN IMMEDIATE")
        begun = asyncio.Event()

        def beginning(*_: Any) -> None:  # an Engine-wide listener: runs before the engine's own sends the BEGIN
            begun.set()

        event.listen(Engine, "begin", beginning)

        async def write() -> None:
            async with db.begin() as conn:
                await conn.execute(text("SELECT 1"))

        task = asyncio.create_task(write())
        await begun.wait()  # its BEGIN IMMEDIATE is on the way: it waits in SQLite's busy handler
        task.cancel()
        other.execute("COMMIT")  # the lock is free: the queued BEGIN IMMEDIATE now succeeds
        with pytest.raises(asyncio.CancelledError):
            await task
        event.remove(Engine, "begin", beginning)

        # This instance writes again on its one pooled connection (queued behind whatever the
        # cancelled writer left on that connection's thread: "cannot start a transaction within a
        # transaction" if it kept one open) ...
        async with db.begin() as conn:
            await conn.execute(text("SELECT 1"))
        # ... and so can another instance ("database is locked" after 5 s if the lock were kept).
        third = sqlite3.connect(path, isolation_level=None, timeout=5)
        third.execute("BEGIN IMMEDIATE")
        third.execute("ROLLBACK")
        third.close()
    finally:
        other.close()
        await db.close()
