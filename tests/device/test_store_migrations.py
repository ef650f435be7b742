"""Bridge and app open the database at the same moment on every boot."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from device.store import MIGRATIONS, Reading, Store


def _open(path: str) -> None:
    Store(path).close()


def test_concurrent_first_open_applies_each_migration_once(tmp_path: Path) -> None:
    path = str(tmp_path / "nattery.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open, args=(path,)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    rows = sqlite3.connect(path).execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))


async def test_bridge_and_app_open_a_new_database_at_once(tmp_path: Path) -> None:
    """In `nattery run` both open the same fresh file from two threads of one process."""
    import asyncio

    from device.store import AsyncStore

    for i in range(10):
        path = tmp_path / f"n{i}.db"

        async def open_close() -> None:
            async with AsyncStore(path):  # noqa: B023 — awaited in this iteration
                await asyncio.sleep(0.01)

        await asyncio.gather(open_close(), open_close(), open_close())
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_store_gets_its_own_identity_and_an_older_one_keeps_the_legacy_name(tmp_path: Path) -> None:
    first, second = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    assert len(first.store_id()) == 32 and first.store_id() != second.store_id()
    second.close()
    # A store from before identities, which had already numbered readings for the sync.
    first.insert_readings([Reading(1_795_000_000.0, {"soc_pct": 50.0}, {})])
    version = [name for name, _ in MIGRATIONS].index("create_store_identity") + 1
    first.db.execute("DROP TABLE store_identity")
    for later in ("web_sessions", "schedules", "edi_acks", "edi_reconciliation", "community_summary"):  # the migrations after it
        first.db.execute(f"DROP TABLE {later}")
    for trigger in ("prices_insert", "prices_update", "forecasts_insert", "forecasts_update"):
        first.db.execute(f"DROP TRIGGER outbox_{trigger}")
    first.db.execute("DELETE FROM schema_version WHERE version >= ?", [version])
    first.close()
    upgraded = Store(tmp_path / "a.db")
    assert upgraded.store_id() == ""
    upgraded.close()
