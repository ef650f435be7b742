"""Committed schedules (``schedules``; owner: :mod:`device.schedules`)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from device.store.core import StoreCore

Slots = dict[int, tuple[int, ...]]  # slot start → (import Wh, export Wh[, flexibility up Wh, down Wh])


class ScheduleQueries(StoreCore):
    def committed_schedule(self, day: str) -> tuple[int, Slots] | None:
        """The schedule in force for local ``day``: the day-ahead version with every revision
        applied in order, and the newest revision number; None before the cut-off committed it."""
        rows = self.db.execute("SELECT revision, slots FROM schedules WHERE day = ? ORDER BY revision", [day]).fetchall()
        if not rows:
            return None
        merged: Slots = {}
        for _revision, slots in rows:
            merged.update({int(ts): tuple(int(v) for v in values) for ts, *values in json.loads(slots)})
        return int(rows[-1][0]), merged

    def add_schedule(self, day: str, revision: int, kind: str, created_at: float,
                     slots: Mapping[int, tuple[int, ...]]) -> None:
        data = json.dumps([[ts, *values] for ts, values in sorted(slots.items())])
        self._write(lambda: self.db.execute(
            "INSERT INTO schedules (day, revision, kind, created_at, slots) VALUES (?, ?, ?, ?, ?)",
            [day, revision, kind, created_at, data],
        ))
