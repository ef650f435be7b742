"""Committed schedules (``schedules``; owner: :mod:`device.schedules`)."""

from __future__ import annotations

import json

from device.store.core import StoreCore

Slots = dict[int, tuple[int, int]]  # slot start → (import Wh, export Wh)


class ScheduleQueries(StoreCore):
    def committed_schedule(self, day: str) -> tuple[int, Slots] | None:
        """The schedule in force for local ``day``: the day-ahead version with every revision
        applied in order, and the newest revision number; None before the cut-off committed it."""
        rows = self.db.execute("SELECT revision, slots FROM schedules WHERE day = ? ORDER BY revision", [day]).fetchall()
        if not rows:
            return None
        merged: Slots = {}
        for _revision, slots in rows:
            merged.update({int(ts): (int(imp), int(exp)) for ts, imp, exp in json.loads(slots)})
        return int(rows[-1][0]), merged

    def add_schedule(self, day: str, revision: int, kind: str, created_at: float, slots: Slots) -> None:
        data = json.dumps([[ts, imp, exp] for ts, (imp, exp) in sorted(slots.items())])
        self._write(lambda: self.db.execute(
            "INSERT INTO schedules (day, revision, kind, created_at, slots) VALUES (?, ?, ?, ?, ?)",
            [day, revision, kind, created_at, data],
        ))
