"""What the cloud sync reads and acknowledges: reading sequences, the outbox and cursors.

Readings are not copied to the outbox: their own id is their sequence number. The outbox rows of
the document streams are written by triggers (:func:`device.store.schema.outbox_triggers`).
"""

from __future__ import annotations

import time
from typing import Any

from device.store.core import StoreCore
from device.store.schema import ROLE_COLUMNS


class OutboxQueries(StoreCore):
    def readings_after(self, after_seq: int, limit: int) -> list[tuple[int, float, str]]:
        """Raw readings ``(seq, ts, data JSON)`` with ``seq > after_seq``, oldest first."""
        return self.db.execute(
            "SELECT id, ts, data FROM readings WHERE id > ? ORDER BY id LIMIT ?", [after_seq, limit]
        ).fetchall()

    def minute_readings_after(self, after_minute: int, limit: int) -> list[tuple[Any, ...]]:
        """Per-minute means ``(minute, samples, soc_pct, battery_w, pv_w, grid_w, load_w)`` of
        complete minutes (the newest reading is in a later minute) after ``after_minute``.

        The time range is bounded to ``limit`` minutes from the next reading on, so each call
        reads only what it returns, however long the backlog or the gaps in it.
        """
        row = self.db.execute(
            "SELECT min(ts), (SELECT max(ts) FROM readings) FROM readings WHERE ts >= ?", [(after_minute + 1) * 60]
        ).fetchone()
        if row[0] is None:
            return []
        first, newest = int(row[0] // 60), int(row[1] // 60)
        return self.db.execute(
            "SELECT CAST(ts / 60 AS INTEGER) AS m, count(*), "
            + ", ".join(f"avg({c})" for c in ROLE_COLUMNS)
            + " FROM readings WHERE ts >= ? AND ts < ? GROUP BY m ORDER BY m",
            [first * 60, min(first + limit, newest) * 60],
        ).fetchall()

    def outbox_after(self, stream: str, after_seq: int, limit: int) -> list[tuple[int, str, str]]:
        """Queued documents ``(seq, key, data JSON)`` of ``stream`` after ``after_seq``."""
        return self.db.execute(
            "SELECT seq, key, data FROM outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
            [stream, after_seq, limit],
        ).fetchall()

    def pending(self, stream: str, after_seq: int) -> tuple[int, float | None]:
        """How many items of ``stream`` wait after ``after_seq``, and the oldest one's time."""
        if stream == "readings":
            # max(id) - cursor: exact unless retention pruned inside the backlog; O(1).
            row = self.db.execute(
                "SELECT max(id), (SELECT ts FROM readings WHERE id > ? ORDER BY id LIMIT 1) FROM readings",
                [after_seq],
            ).fetchone()
            return max((row[0] or 0) - after_seq, 0), row[1]
        if stream == "readings_1min":
            row = self.db.execute(
                "SELECT min(ts), max(ts) FROM readings WHERE ts >= ?", [(after_seq + 1) * 60]
            ).fetchone()
            if row[0] is None:
                return 0, None
            return max(int(row[1] // 60) - int(row[0] // 60), 0), row[0]
        row = self.db.execute(
            "SELECT count(*), min(created_at) FROM outbox WHERE stream = ? AND seq > ?", [stream, after_seq]
        ).fetchone()
        return row[0], row[1]

    def store_id(self) -> str:
        """This store's identity (see :func:`device.store.schema.create_store_identity`)."""
        return str(self.db.execute("SELECT id FROM store_identity").fetchone()[0])

    def sync_cursor(self, stream: str) -> int:
        """The last sequence number of ``stream`` the aggregator acknowledged (0: none)."""
        row = self.db.execute("SELECT last_seq FROM sync_cursors WHERE stream = ?", [stream]).fetchone()
        return 0 if row is None else row[0]

    def set_sync_cursor(self, stream: str, last_seq: int) -> None:
        row = {"stream": stream, "last_seq": last_seq, "updated_at": time.time()}
        self._write(lambda: self.db.table("sync_cursors").upsert(row, pk="stream"))
