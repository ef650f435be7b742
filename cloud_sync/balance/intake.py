"""From what devices synced to the balance tables: committed schedules and measured quarter-hours.

Devices upload their committed schedules (stream ``schedules``, one document per version, see
:mod:`device.schedules`) and their metered quarter-hours (stream ``energy``) as documents; for
every metering location linked to a device they become typed rows here: ``schedule_slots`` (each
revision kept, with the flexibility around each slot where the device sends it;
``schedules_in_force`` the newest of each slot) and ``actuals`` with source ``device`` (the
newest upload of a slot wins, rounded to whole Wh). Official meter values arrive over EDI as source ``edi`` and are preferred where both
exist: the partners' MSCONS values the gateway accepted (``edi_values``, source ``partner``). Runs
call :func:`refresh` for their period first, so a run sees everything synced so far.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.db import Database
from cloud_sync.schema.balance import actuals, schedule_slots, schedules_in_force
from cloud_sync.schema.edi import edi_locations, edi_values
from cloud_sync.schema.sync import documents

SCHEDULE_LOOKBACK_S = 2 * 86400  # a day's day-ahead schedule is committed the day before


async def refresh(db: Database, start: int, end: int) -> dict[str, int]:
    """Copy the linked devices' schedules and energy slots of ``[start, end)``; returns row counts."""
    dialect = postgresql if db.kind == "postgresql" else sqlite
    async with db.begin() as conn:
        official = await _official(conn, start, end)
        if official:
            await _upsert_actuals(conn, dialect, official)
        linked = dict((await conn.execute(select(edi_locations.c.device_id, edi_locations.c.melo_id)
                                           .where(edi_locations.c.device_id.is_not(None)))).all())
        if not linked:
            return {"schedule_slots": 0, "actuals": len(official)}
        docs = (await conn.execute(select(documents.c.device_id, documents.c.stream, documents.c.data).where(
            documents.c.device_id.in_(sorted(linked)), documents.c.stream.in_(("schedules", "energy")),
            documents.c.ts >= start - SCHEDULE_LOOKBACK_S, documents.c.ts < end))).all()
        planned: list[dict[str, Any]] = []
        metered: list[dict[str, Any]] = []
        now = time.time()
        for device, stream, data in docs:
            doc = json.loads(data)
            melo = linked[device]
            if stream == "schedules":
                planned.extend({"melo_id": melo, "ts": ts, "revision": doc["revision"], "kind": doc["kind"],
                                "import_wh": imp, "export_wh": exp, "flex_up_wh": flex[0] if flex else None,
                                "flex_down_wh": flex[1] if flex else None, "created_at": doc["ts"]}
                               for ts, imp, exp, *flex in doc["slots"] if start <= ts < end)
            elif start <= doc["ts"] < end:
                metered.append({"melo_id": melo, "ts": int(doc["ts"]), "source": "device",
                                "import_wh": round(doc.get("import_wh") or 0), "export_wh": round(doc.get("export_wh") or 0),
                                "received_at": now})
        if planned:
            await conn.execute(dialect.insert(schedule_slots).on_conflict_do_nothing(), planned)
            newest: dict[tuple[str, int], dict[str, Any]] = {}
            for row in planned:
                key = (row["melo_id"], row["ts"])
                if key not in newest or row["revision"] > newest[key]["revision"]:
                    newest[key] = {k: row[k] for k in ("melo_id", "ts", "revision", "kind", "import_wh", "export_wh")}
            force = dialect.insert(schedules_in_force)
            await conn.execute(force.on_conflict_do_update(
                index_elements=["melo_id", "ts"],
                set_={c: force.excluded[c] for c in ("revision", "kind", "import_wh", "export_wh")},
                where=force.excluded.revision > schedules_in_force.c.revision), list(newest.values()))
        if metered:
            await _upsert_actuals(conn, dialect, metered)
    return {"schedule_slots": len(planned), "actuals": len(metered) + len(official)}


async def _official(conn: AsyncConnection, start: int, end: int) -> list[dict[str, Any]]:
    """The market partners' meter values (EDI, ``edi_values`` from partner files) as actuals:
    OBIS 1.29.0 is the import, 2.29.0 the export of a quarter-hour."""
    rows = (await conn.execute(select(edi_values.c.melo_id, edi_values.c.slot_start, edi_values.c.obis,
                                      edi_values.c.wh).where(
        edi_values.c.source == "partner", edi_values.c.slot_start >= start, edi_values.c.slot_start < end))).all()
    slots: dict[tuple[str, int], dict[str, Any]] = {}
    now = time.time()
    for melo, ts, obis, wh in rows:
        row = slots.setdefault((melo, int(ts)), {"melo_id": melo, "ts": int(ts), "source": "edi", "import_wh": 0,
                                                 "export_wh": 0, "received_at": now})
        row["export_wh" if ":2.29." in obis else "import_wh"] += int(wh)
    return list(slots.values())


async def _upsert_actuals(conn: AsyncConnection, dialect: Any, rows: list[dict[str, Any]]) -> None:
    upsert = dialect.insert(actuals)
    await conn.execute(upsert.on_conflict_do_update(
        index_elements=["melo_id", "ts", "source"],
        set_={"import_wh": upsert.excluded.import_wh, "export_wh": upsert.excluded.export_wh,
              "received_at": upsert.excluded.received_at}), rows)
