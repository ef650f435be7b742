"""What each device's battery saved, from the settlement documents it synced.

Per settled quarter-hour the device sends its cost (``cost_eur`` − ``revenue_eur``) and what the
same slot would have cost without a battery (``cost_no_battery_eur``, see
:mod:`device.accounting`); the saving is the difference, summed over the slots that had a price
(``cost_eur`` not null). A month is a calendar month in UTC: the aggregator does not know each
home's time zone, so a month's first and last hours may differ from the device's own page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from cloud_sync.db import Database
from cloud_sync.documents import number
from cloud_sync.schema.sync import documents


def month_bounds(now: float) -> tuple[float, float]:
    """The UTC calendar month around ``now`` as epoch seconds [start, end)."""
    day = datetime.fromtimestamp(now, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


async def month_savings(db: Database, now: float, only: str | None = None) -> dict[str, dict[str, Any]]:
    """Per device with priced settlements this month: ``savings_eur`` (vs. no battery) and
    ``slots`` (how many quarter-hours went into it)."""
    start, end = month_bounds(now)
    cost, revenue, baseline = (number(db.kind, f) for f in ("cost_eur", "revenue_eur", "cost_no_battery_eur"))
    doc = documents.c
    query = (select(doc.device_id, func.sum(baseline - cost + func.coalesce(revenue, 0)), func.count())
             .where(doc.stream == "settlements", doc.ts >= start, doc.ts < end, cost.is_not(None),
                    baseline.is_not(None))
             .group_by(doc.device_id))
    if only:
        query = query.where(doc.device_id == only)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return {str(dev): {"savings_eur": round(float(total), 2), "slots": int(n)} for dev, total, n in rows}
