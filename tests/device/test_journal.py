"""The bridge's write-ahead journal: what a killed process leaves is recovered once, not twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from device.journal import ReadingJournal
from device.store import AsyncStore, Reading, Store


def reading(i: int) -> Reading:
    return Reading(1_800_000_000.5 + i, {"soc_pct": 50.0 + i, "state": "normal"}, {"battery_soc": 50.0 + i})


async def test_a_crash_between_commit_and_cleanup_neither_loses_nor_doubles(tmp_path: Path) -> None:
    db = tmp_path / "nattery.db"
    journal = ReadingJournal.beside(db)
    async with AsyncStore(db) as store:
        for i in range(3):
            await journal.append(reading(i))
        await journal.rotate()  # a flush starts with readings 0-2 …
        await journal.append(reading(3))  # … polls go on …
        await store.call(Store.insert_readings, [reading(i) for i in range(3)])  # … it commits, then kill -9
        await journal.append(reading(4))
        after_crash = ReadingJournal.beside(db)  # the next process
        recovered = await after_crash.recover()
        assert [r.ts for r in recovered] == [reading(i).ts for i in range(5)]
        assert recovered[4] == reading(4)
        assert await store.call(Store.insert_missing_readings, recovered) == 2
        await after_crash.clear()
        assert await ReadingJournal.beside(db).recover() == []
    rows = sqlite3.connect(db).execute("SELECT count(*), count(DISTINCT ts) FROM readings").fetchone()
    assert rows == (5, 5)


async def test_a_failed_flush_keeps_its_batch_for_the_next_rotation(tmp_path: Path) -> None:
    journal = ReadingJournal(tmp_path / "j")
    await journal.append(reading(0))
    await journal.rotate()  # this flush fails: no committed()
    await journal.append(reading(1))
    await journal.rotate()  # the next one carries both
    assert [r.ts for r in await ReadingJournal(tmp_path / "j").recover()] == [reading(0).ts, reading(1).ts]
    await journal.committed()
    assert await ReadingJournal(tmp_path / "j").recover() == []


async def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    journal = ReadingJournal(tmp_path / "j")
    await journal.append(reading(0))
    await journal.close()
    with open(tmp_path / "j", "ab") as f:
        f.write(b'{"ts": 18000')  # the process died mid-write
    assert await ReadingJournal(tmp_path / "j").recover() == [reading(0)]
