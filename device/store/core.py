"""The connection every query runs on: opening, WAL, migrations and write transactions.

Writes go through :meth:`StoreCore._write`, which turns a full disk into pruning and a retry
instead of a crash loop; *how* room is made is the retention part's job
(:meth:`StoreCore.relieve_full_disk`, implemented in :mod:`device.store.retention`).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import structlog

from common.utc import format_utc
from device.store.records import Retention, StoreError, StoreFull
from device.store.reserve import DiskReserve, is_disk_full
from device.store.schema import MIGRATIONS
from device.store.sqlite import sqlite_utils

T = TypeVar("T")
log = structlog.get_logger(__name__)

FULL_DISK_FRACTIONS = (0.05, 0.2, 0.5)  # shares of the oldest readings deleted per retry


class StoreCore(ABC):
    """One SQLite connection to ``nattery.db``, migrated on open. Use one instance per thread."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self.reserve = DiskReserve(self.path)
        self._full_disk_depth = 0  # >0 while making room: a second full disk must not recurse
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open database ({exc})") from exc
        self.db = sqlite_utils.Database(conn)
        self._enable_wal()
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self.migrate()
        self.reserve.ensure()

    def _enable_wal(self, attempts: int = 100) -> None:
        """Switch to WAL. Changing the journal mode ignores the busy timeout, and on first boot the
        bridge and the app create the file at the same moment, so a locked database is retried."""
        for attempt in range(attempts):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise StoreError(f"{self.path}: cannot switch to WAL ({exc})") from exc
                time.sleep(0.05)

    @property
    def version(self) -> int:
        if not self.db["schema_version"].exists():
            return 0
        row = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] or 0

    def migrate(self) -> None:
        """Apply pending migrations, each in one transaction with its version record.

        The bridge and the app open the database at the same moment on every boot: each step
        takes the write lock first and reads the version under it, so every step runs once.
        """
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
        )
        while True:
            with self.db.conn:
                self.db.execute("BEGIN IMMEDIATE")
                current = self.version
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.path}: database schema version {current} is newer than this release "
                        f"supports ({len(MIGRATIONS)}); refusing to touch it — update the software"
                    )
                if current == len(MIGRATIONS):
                    return
                name, fn = MIGRATIONS[current]
                fn(self.db)
                self.db.table("schema_version").insert(
                    {"version": current + 1, "name": name, "applied_at": format_utc()}
                )

    def close(self) -> None:
        self.db.conn.close()

    @abstractmethod
    def relieve_full_disk(self, now: float, fraction: float) -> int:
        """Make room after SQLITE_FULL / ENOSPC; returns how many readings were deleted."""

    def _checkpoint(self, mode: str) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute(f"PRAGMA wal_checkpoint({mode})")

    def _write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in one write transaction; on a full disk, make room and retry.

        A full SD card must not turn into a crash loop: the retention policy is applied,
        then ever larger shares of the oldest readings go, and a critical ``disk_full`` event
        records what was deleted. Only if that does not help is :class:`StoreFull` raised.
        """
        for attempt in range(len(FULL_DISK_FRACTIONS) + 1):
            try:
                with self.db.conn:
                    self.db.execute("BEGIN IMMEDIATE")
                    return fn()
            except (sqlite3.Error, OSError) as exc:
                if self.db.conn.in_transaction:  # a failed COMMIT leaves the transaction open
                    with contextlib.suppress(sqlite3.Error):
                        self.db.conn.rollback()
                if not is_disk_full(exc) or self._full_disk_depth:
                    raise
                if attempt == len(FULL_DISK_FRACTIONS):
                    raise StoreFull(f"{self.path}: disk full even after pruning ({exc})") from exc
                deleted = self.relieve_full_disk(time.time(), FULL_DISK_FRACTIONS[attempt])
                log.error("disk_full", path=str(self.path), deleted_readings=deleted, attempt=attempt + 1)
                try:
                    self._full_disk_depth += 1
                    with self.db.conn:
                        self.db.table("events").insert({
                            "ts": time.time(), "level": "critical", "kind": "disk_full",
                            "message": f"database or disk full; deleted {deleted} oldest readings to make room",
                            "data": json.dumps({"deleted_readings": deleted, "error": str(exc)}),
                        })
                except (sqlite3.Error, OSError):
                    log.warning("disk_full_event_not_recorded")
                finally:
                    self._full_disk_depth -= 1
        raise AssertionError("unreachable")
