"""Telemetry readings: the bridge's batched inserts and the newest snapshot."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import orjson

from device.store.core import StoreCore
from device.store.records import Reading
from device.store.schema import ROLE_COLUMNS

_INSERT_READING = (
    f"INSERT INTO readings (ts, {', '.join(ROLE_COLUMNS)}, state, data)"
    f" VALUES (?, {', '.join('?' * len(ROLE_COLUMNS))}, ?, ?)"
)
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class ReadingQueries(StoreCore):
    def insert_readings(self, readings: Iterable[Reading]) -> int:
        """Insert a batch of readings in one transaction; returns how many.

        ``data`` is compact JSON (orjson: several times faster than json, and NaN becomes
        null, so the stored text is always valid JSON for the sync and the web page).
        """
        rows = [
            (
                r.ts,
                *(r.roles.get(c) for c in ROLE_COLUMNS),
                _state_text(r.roles.get("state")),
                orjson.dumps({"roles": r.roles, "registers": r.registers}, option=_ORJSON_OPTIONS).decode(),
            )
            for r in readings
        ]
        self._write(lambda: self.db.conn.executemany(_INSERT_READING, rows))
        return len(rows)

    def insert_missing_readings(self, readings: Iterable[Reading]) -> int:
        """Insert the readings whose timestamp is not stored yet (a journal replayed after a
        crash may hold readings the last batch had already committed); returns how many."""
        batch = list(readings)
        if not batch:
            return 0
        low, high = min(r.ts for r in batch), max(r.ts for r in batch)
        stored = {row[0] for row in self.db.execute(
            "SELECT ts FROM readings WHERE ts BETWEEN ? AND ?", [low, high])}
        fresh: dict[float, Reading] = {}
        for r in batch:
            if r.ts not in stored:
                fresh.setdefault(r.ts, r)
        return self.insert_readings(fresh.values()) if fresh else 0

    def count_readings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM readings").fetchone()[0])

    def latest_reading(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT ts, data FROM readings ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"ts": row[0], **json.loads(row[1])}


def _state_text(value: Any) -> str | None:
    return None if value is None else str(value)
