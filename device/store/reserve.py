"""The disk-full reserve: room kept aside so pruning can still run when the SD card is full."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

RESERVE_MAX_BYTES = 8 * 1024 * 1024


class DiskReserve:
    """A file next to the database (``nattery.db.reserve``) that holds some of the file system."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".reserve")

    def release(self) -> None:
        if not self.path.exists():
            return
        self.path.unlink()
        # ext4 reuses freed blocks only after its journal commits; syncing the directory
        # commits it, so the room is there for the pruning that follows.
        directory = os.open(self.database.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def ensure(self) -> None:
        """Keep some of the file system (a tenth, at most 8 MB) in the reserve file, released
        when the disk is full so that pruning itself has room to run. Taken only while at
        least twice that much is free, so it never causes the shortage it is meant for."""
        if self.path.exists():
            return
        try:
            fs = os.statvfs(self.database.parent)
            size = min(RESERVE_MAX_BYTES, fs.f_blocks * fs.f_frsize // 10)
            if fs.f_bavail * fs.f_frsize < 2 * size:
                return
            with self.path.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError:
            self.path.unlink(missing_ok=True)  # no room now; retried after the next pruning


def is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed because the file system (or SQLite's page limit) is full."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
