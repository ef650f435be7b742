"""Battery schedules (owner: planner)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from device.store.core import StoreCore


class PlanQueries(StoreCore):
    def insert_plan(self, created_at: float, reason: str, data: Mapping[str, Any]) -> int:
        """Store a plan (``Plan.to_json()``); returns its id. Older plans go with retention."""
        def write() -> int:
            cursor = self.db.execute(
                "INSERT INTO plans (created_at, reason, data) VALUES (?, ?, ?)",
                [created_at, reason, json.dumps(data)],
            )
            return int(cursor.lastrowid or 0)

        return self._write(write)

    def latest_plan(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, created_at, reason, data FROM plans ORDER BY created_at DESC, id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"id": row[0], "created_at": row[1], "reason": row[2], **json.loads(row[3])}
