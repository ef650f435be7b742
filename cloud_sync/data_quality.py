"""How fresh and how complete each device's data at the aggregator is.

Freshness: how long ago the device last uploaded and how old its newest reading is. Completeness
over a window of whole UTC days up to now: the quarter-hour energy slots the device synced
against the slots that ended in the window since it was registered, how many of them the
device marked complete, and the share of the window's time its readings covered (the slots'
``covered_s``). A device that kept measuring but could not upload shows up here once it catches
up; one that did not measure stays short.
"""

from __future__ import annotations

from typing import Any

from cloud_sync.db import Database
from cloud_sync.documents import number

SLOT_S = 900


async def quality(db: Database, now: float, days: int, only: str | None = None) -> list[dict[str, Any]]:
    """One row per device (not revoked, or ``only``), ordered by id."""
    since = now - days * 86_400
    covered, complete = number(db.kind, "covered_s"), number(db.kind, "complete")
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT d.id, d.created_at, d.last_seen, "
            " (SELECT max(s.last_ts) FROM streams s WHERE s.device_id = d.id"
            "  AND s.stream IN ('readings', 'readings_1min')),"
            " (SELECT coalesce(sum(s.backlog), 0) FROM streams s WHERE s.device_id = d.id)"
            " FROM devices d WHERE " + ("d.id = $1" if only else "d.revoked_at IS NULL") + " ORDER BY d.id",
            *([only] if only else []))
        slots = await tx.fetch(
            f"SELECT device_id, count(*), coalesce(sum(CASE WHEN {complete} = 1 THEN 1 ELSE 0 END), 0),"
            f" coalesce(sum({covered}), 0) FROM documents WHERE stream = 'energy' AND ts >= $1 AND ts < $2"
            + (" AND device_id = $3" if only else "") + " GROUP BY device_id",
            since, now, *([only] if only else []))
    by_device = {str(dev): (int(n), int(done), float(cov)) for dev, n, done, cov in slots}
    result = []
    for dev, created_at, last_seen, newest, backlog in rows:
        start = max(since, float(created_at))
        expected = max(0, int(now // SLOT_S) - int(-(-start // SLOT_S)))  # slots begun after start, ended by now
        stored, done, cov = by_device.get(str(dev), (0, 0, 0.0))
        result.append({
            "id": str(dev),
            "upload_age_s": None if last_seen is None else round(now - float(last_seen), 1),
            "reading_age_s": None if newest is None else round(now - float(newest), 1),
            "backlog": int(backlog),
            "expected_slots": expected,
            "slots": stored,
            "complete_slots": done,
            "completeness_pct": None if expected == 0 else round(100.0 * min(stored, expected) / expected, 1),
            "coverage_pct": None if expected == 0 else round(min(100.0, 100.0 * cov / (expected * SLOT_S)), 1),
        })
    return result
