"""A write-ahead journal of the bridge's buffered readings, so a ``kill -9`` loses (almost) none.

The bridge writes readings to SQLite in batches every ``bridge.flush_interval_s``. Each reading
is first appended to ``<database>-readings.journal`` (one JSON line, handed to the kernel before
it is published, so it survives the process being killed; not fsynced, so a power cut can still
lose what the kernel had not written). A flush rotates the journal to ``….flushing`` and deletes
that file once the batch is committed; a failed flush leaves it, and the next rotation appends to
it. At start-up :meth:`ReadingJournal.recover` returns whatever a crash left in both files; the
bridge stores those readings it does not have yet (by timestamp), so nothing is doubled either.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import IO

import orjson
import structlog

from device.store import Reading

log = structlog.get_logger(__name__)


class ReadingJournal:
    """Append-only JSON lines next to the database; all file work runs off the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.flushing = path.with_name(path.name + ".flushing")
        self._file: IO[bytes] | None = None
        self._lock = asyncio.Lock()  # appends and rotations never interleave

    @classmethod
    def beside(cls, db_path: Path) -> ReadingJournal:
        return cls(db_path.with_name(db_path.name + "-readings.journal"))

    async def append(self, reading: Reading) -> None:
        line = orjson.dumps({"ts": reading.ts, "roles": reading.roles, "registers": reading.registers}) + b"\n"
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    async def rotate(self) -> None:
        """Before a flush: what is journalled so far moves to the ``.flushing`` file."""
        async with self._lock:
            await asyncio.to_thread(self._rotate)

    async def committed(self) -> None:
        """After a flush: the batch is in SQLite, its journal goes."""
        async with self._lock:
            await asyncio.to_thread(self.flushing.unlink, True)

    async def recover(self) -> list[Reading]:
        """The readings a crash left in the journal files (oldest first); a torn last line is skipped."""
        async with self._lock:
            return await asyncio.to_thread(self._recover)

    async def clear(self) -> None:
        """After the recovered readings are stored."""
        async with self._lock:
            await asyncio.to_thread(self._clear)

    async def close(self) -> None:
        async with self._lock:
            if self._file is not None:
                await asyncio.to_thread(self._file.close)
                self._file = None

    # --- blocking parts, run in a thread ----------------------------------------------------
    def _append(self, line: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 — kept open between appends
        self._file.write(line)
        self._file.flush()  # into the kernel: a killed process no longer holds it

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self.path.exists():
            return
        if self.flushing.exists():  # the last flush failed: its readings are still to be written
            with open(self.flushing, "ab") as target:
                target.write(self.path.read_bytes())
            self.path.unlink()
        else:
            os.replace(self.path, self.flushing)

    def _recover(self) -> list[Reading]:
        readings: list[Reading] = []
        for source in (self.flushing, self.path):
            if not source.exists():
                continue
            for number, line in enumerate(source.read_bytes().splitlines(), 1):
                try:
                    item = orjson.loads(line)
                    readings.append(Reading(float(item["ts"]), item["roles"], item["registers"]))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    log.warning("journal line skipped", file=str(source), line=number, error=str(exc))
        return readings

    def _clear(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.flushing.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
