"""The newest documents a device synced, for an operator's view of that device: its MSCONS
interchanges (stream ``edi``) and its settled days (from stream ``settlements``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloud_sync.db import Database
from cloud_sync.documents import number


async def edi_files(db: Database, device: str, limit: int = 10) -> list[dict[str, Any]]:
    """``[{"name", "created_at", "period_start", "period_end", "bytes"}]``, newest version first."""
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT key, data FROM documents WHERE device_id = $1 AND stream = 'edi' ORDER BY seq DESC LIMIT $2",
            device, limit)
    files = []
    for key, data in rows:
        doc = json.loads(data)
        files.append({"name": str(key), "created_at": doc.get("created_at"), "period_start": doc.get("period_start"),
                      "period_end": doc.get("period_end"), "bytes": len(str(doc.get("content", "")).encode())})
    return files


async def settled_days(db: Database, device: str, since: float) -> list[dict[str, Any]]:
    """Per UTC day since ``since`` with settled slots: slots, priced slots, net cost and savings (EUR)."""
    cost, revenue, baseline = (number(db.kind, f) for f in ("cost_eur", "revenue_eur", "cost_no_battery_eur"))
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            f"SELECT ts, {cost}, coalesce({revenue}, 0), {baseline} FROM documents"
            " WHERE device_id = $1 AND stream = 'settlements' AND ts >= $2 ORDER BY ts", device, since)
    days: dict[str, dict[str, Any]] = {}
    for ts, c, r, b in rows:
        day = datetime.fromtimestamp(float(ts), UTC).date().isoformat()
        total = days.setdefault(day, {"day": day, "slots": 0, "priced_slots": 0, "net_cost_eur": 0.0,
                                      "savings_eur": 0.0})
        total["slots"] += 1
        if c is not None and b is not None:
            total["priced_slots"] += 1
            total["net_cost_eur"] += float(c) - float(r)
            total["savings_eur"] += float(b) - float(c) + float(r)
    return list(days.values())
