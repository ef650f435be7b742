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

from sqlalchemy import case, func, select

from cloud_sync.db import Database
from cloud_sync.documents import number
from cloud_sync.schema.sync import devices, documents, streams

SLOT_S = 900


async def quality(db: Database, now: float, days: int, only: str | None = None) -> list[dict[str, Any]]:
    """One row per device (not revoked, or ``only``), ordered by id."""
    since = now - days * 86_400
    d, s, doc = devices.c, streams.c, documents.c
    covered, complete = number(db.kind, "covered_s"), number(db.kind, "complete")
    newest_reading = (select(func.max(s.last_ts)).where(s.device_id == d.id, s.stream.in_(("readings", "readings_1min")))
              .scalar_subquery())
    stream_backlog = select(func.coalesce(func.sum(s.backlog), 0)).where(s.device_id == d.id).scalar_subquery()
    slots_query = (select(doc.device_id, func.count(), func.coalesce(func.sum(case((complete == 1, 1), else_=0)), 0),
                          func.coalesce(func.sum(covered), 0))
                   .where(doc.stream == "energy", doc.ts >= since, doc.ts < now).group_by(doc.device_id))
    if only:
        slots_query = slots_query.where(doc.device_id == only)
    async with db.read() as conn:
        rows = (await conn.execute(select(d.id, d.created_at, d.last_seen, newest_reading, stream_backlog)
                                   .where(d.id == only if only else d.revoked_at.is_(None)).order_by(d.id))).all()
        slots = (await conn.execute(slots_query)).all()
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
