"""The newest documents a device synced, for an operator's view of that device: its MSCONS
interchanges (stream ``edi``) with the EDI gateway's answer to each, its committed schedules
(stream ``schedules``: the plan as the device committed it) and its settled days (from stream
``settlements``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from cloud_sync.db import Database
from cloud_sync.documents import number
from cloud_sync.edi.store import answers_for
from cloud_sync.schema.sync import documents


async def edi_files(db: Database, device: str, limit: int = 10) -> list[dict[str, Any]]:
    """``[{"name", "created_at", "period_start", "period_end", "bytes", "state", "errors"}]``, newest
    version first; ``state`` is the gateway's answer (accepted, rejected) or None before it ran."""
    doc = documents.c
    async with db.read() as conn:
        rows = (await conn.execute(select(doc.key, doc.data).where(doc.device_id == device, doc.stream == "edi")
                                   .order_by(doc.seq.desc()).limit(limit))).all()
        answers = {a["name"]: a for a in await answers_for(conn, device, [str(key) for key, _ in rows])}
    files = []
    for key, data in rows:
        doc = json.loads(data)
        answer = answers.get(str(key), {})
        files.append({"name": str(key), "created_at": doc.get("created_at"), "period_start": doc.get("period_start"),
                      "period_end": doc.get("period_end"), "bytes": len(str(doc.get("content", "")).encode()),
                      "state": answer.get("state"), "errors": len(answer.get("errors") or [])})
    return files


async def schedules(db: Database, device: str, since: float, limit: int = 10) -> list[dict[str, Any]]:
    """The newest revision of each local day the device committed a schedule for since ``since``
    (commit time): ``[{"day", "revision", "kind", "committed_at", "slots", "import_kwh", "export_kwh"}]``,
    newest day first."""
    doc = documents.c
    async with db.read() as conn:
        rows = (await conn.execute(select(doc.data).where(doc.device_id == device, doc.stream == "schedules",
                                                          doc.ts >= since).order_by(doc.ts))).all()
    newest: dict[str, dict[str, Any]] = {}
    for (data,) in rows:
        doc = json.loads(data)
        day, revision = str(doc.get("day")), doc.get("revision")
        if not isinstance(revision, int) or (day in newest and newest[day]["revision"] > revision):
            continue
        slots = doc.get("slots") or []
        newest[day] = {"day": day, "revision": revision, "kind": doc.get("kind"), "committed_at": doc.get("ts"),
                       "slots": len(slots), "import_kwh": sum(s[1] for s in slots) / 1000,
                       "export_kwh": sum(s[2] for s in slots) / 1000}
    return sorted(newest.values(), key=lambda d: d["day"], reverse=True)[:limit]


async def settled_days(db: Database, device: str, since: float) -> list[dict[str, Any]]:
    """Per UTC day since ``since`` with settled slots: slots, priced slots, net cost and savings (EUR)."""
    cost, revenue, baseline = (number(db.kind, f) for f in ("cost_eur", "revenue_eur", "cost_no_battery_eur"))
    doc = documents.c
    async with db.read() as conn:
        rows = (await conn.execute(select(doc.ts, cost, func.coalesce(revenue, 0), baseline).where(
            doc.device_id == device, doc.stream == "settlements", doc.ts >= since).order_by(doc.ts))).all()
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
