"""Alerts and control actions; any part of the appliance may add one."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from device.store.core import StoreCore

EVENT_LEVELS = ("debug", "info", "warning", "error", "critical")


class EventQueries(StoreCore):
    def add_event(
        self, level: str, kind: str, message: str, data: Mapping[str, Any] | None = None,
        ts: float | None = None,
    ) -> int:
        """Record an alert or action; ``level`` is debug|info|warning|error|critical."""
        if level not in EVENT_LEVELS:
            raise ValueError(f"event level: got {level!r}, allowed: {', '.join(EVENT_LEVELS)}")
        row = {
            "ts": time.time() if ts is None else ts, "level": level, "kind": kind,
            "message": message, "data": None if data is None else json.dumps(dict(data)),
        }
        return self._write(
            lambda: int(self.db.execute(
                "INSERT INTO events (ts, level, kind, message, data) VALUES (:ts, :level, :kind, :message, :data)", row
            ).lastrowid or 0)
        )

    def events(
        self, limit: int = 100, since: float | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest events first; ``data`` decoded."""
        where: list[str] = ["1"]
        args: list[Any] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        rows = self.db.query(
            f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*args, limit]
        )
        return [{**r, "data": None if r["data"] is None else json.loads(r["data"])} for r in rows]
