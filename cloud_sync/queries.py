"""Read side: what operators (and each device, about itself) can ask the aggregator."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.db import Database
from cloud_sync.savings import month_savings
from cloud_sync.schema import edi
from cloud_sync.schema import sync as t
from common.sync_protocol import READING_STREAMS, STREAMS
from common.sync_values import is_number
from common.utc import format_utc

ONLINE_WINDOW_S = 300.0  # a device that uploaded within this is shown online
ENERGY_FIELDS = ("import_wh", "export_wh", "charge_wh", "discharge_wh", "pv_wh", "load_wh")


def iso(ts: float | None) -> str | None:
    """The time as text; None when unknown or beyond what a date can say (a release before the
    value checks may have stored a reading dated in the year 33,000)."""
    try:
        return None if ts is None else format_utc(ts)
    except (OverflowError, OSError, ValueError):
        return None


async def stream_state(db: Database, device: str, stream: str, store: str) -> dict[str, Any]:
    """Where the device's ``store`` stands in ``stream`` (0 when it has uploaded nothing yet)."""
    s = t.streams.c
    async with db.read() as conn:
        row = (await conn.execute(select(s.last_seq, s.last_ts, s.backlog).where(
            s.device_id == device, s.stream == stream, s.store_id == store))).first()
    last_seq, last_ts, backlog = row if row else (0, None, 0)
    return {"stream": stream, "store": store, "last_seq": last_seq, "last_ts": iso(last_ts), "backlog": backlog}


async def devices(db: Database, only: str | None = None) -> list[dict[str, Any]]:
    """Every device (or one): online, last seen, sync lag and backlog, latest telemetry, what
    its battery saved this month (:mod:`cloud_sync.savings`; None before any priced settlement).

    Per stream the store that uploaded last is the device's current one; ``stores`` counts
    how many stores (SD cards) the device has uploaded from."""
    now = time.time()
    d, s = t.devices.c, t.streams.c
    async with db.read() as conn:
        rows = (await conn.execute(select(d.id, d.created_at, d.revoked_at, d.last_seen).where(
            *([d.id == only] if only else [])).order_by(d.id))).all()
        streams = (await conn.execute(select(
            s.device_id, s.stream, s.store_id, s.last_seq, s.last_ts, s.backlog, s.updated_at).where(
            *([s.device_id == only] if only else [])).order_by(s.updated_at))).all()
        by_device: dict[str, dict[str, Any]] = {}
        for dev, stream, store, last_seq, last_ts, backlog, updated_at in streams:  # the latest store wins
            known = by_device.setdefault(dev, {}).get(stream, {"stores": 0})
            by_device[dev][stream] = {
                "store": store, "last_seq": last_seq, "last_ts": iso(last_ts), "backlog": backlog,
                "updated_at": iso(updated_at), "stores": known["stores"] + 1,
            }
        latest = {dev: await _latest_telemetry(conn, dev, by_device.get(dev, {})) for dev, *_ in rows}
    saved = await month_savings(db, now, only)
    result = []
    for dev, created_at, revoked_at, last_seen in rows:
        telemetry = latest[dev]
        result.append({
            "id": dev,
            "created_at": iso(created_at),
            "revoked": revoked_at is not None,
            "online": last_seen is not None and now - last_seen <= ONLINE_WINDOW_S,
            "last_seen": iso(last_seen),
            # How old the newest reading the aggregator holds is: what an operator sees as lag.
            "sync_lag_s": None if telemetry is None else round(now - telemetry["ts"], 1),
            "backlog": sum(s["backlog"] for s in by_device.get(dev, {}).values()),
            "streams": by_device.get(dev, {}),
            "latest_telemetry": telemetry,
            "savings_month_eur": saved[dev]["savings_eur"] if dev in saved else None,
        })
    return result


async def fleet_counts(db: Database) -> tuple[int, int]:
    """Devices registered and not revoked, and how many of them are online."""
    since = time.time() - ONLINE_WINDOW_S
    d = t.devices.c
    async with db.read() as conn:
        registered, online = (await conn.execute(
            select(func.count(), func.coalesce(func.sum(case((d.last_seen >= since, 1), else_=0)), 0))
            .where(d.revoked_at.is_(None)))).one()
    return int(registered), int(online)


async def edi_file_counts(db: Database) -> list[tuple[str, str, int]]:
    """EDI interchanges received so far, as (source, outcome, count): outcome ``accepted``,
    ``rejected_syntax`` (the CONTRL rejected it) or ``rejected_application`` (an APERAK)."""
    f = edi.edi_files.c
    outcome = case((f.accepted, "accepted"), (f.syntax_ok, "rejected_application"), else_="rejected_syntax")
    async with db.read() as conn:
        rows = (await conn.execute(select(f.source, outcome, func.count()).group_by(f.source, outcome))).all()
    return [(str(source), str(kind), int(count)) for source, kind, count in rows]


async def device_times(db: Database) -> list[tuple[str, float | None, float | None]]:
    """Per device not revoked: when it last uploaded and the time of its newest reading held
    (from the streams table, without reading any reading)."""
    d, s = t.devices.c, t.streams.c
    async with db.read() as conn:
        rows = (await conn.execute(
            select(d.id, d.last_seen, func.max(s.last_ts))
            .select_from(t.devices.outerjoin(t.streams, and_(s.device_id == d.id, s.stream.in_(READING_STREAMS))))
            .where(d.revoked_at.is_(None)).group_by(d.id, d.last_seen).order_by(d.id))).all()
    return [(dev, seen, newest) for dev, seen, newest in rows]


async def _latest_telemetry(conn: AsyncConnection, device: str, streams: dict[str, Any]) -> dict[str, Any] | None:
    newest = None
    r = t.readings.c
    for stream in READING_STREAMS:
        if stream not in streams:
            continue
        row = (await conn.execute(select(r.ts, r.line).where(
            r.device_id == device, r.stream == stream, r.store_id == streams[stream]["store"])
            .order_by(r.seq.desc()).limit(1))).first()
        if row and (newest is None or row[0] > newest[0]):
            newest = row
    if newest is None:
        return None
    data = json.loads(newest[1])["data"]
    return {**data, "ts": newest[0], "time": iso(newest[0])}  # the stored time wins over the data's


async def current_store(db: Database, device: str, stream: str) -> str | None:
    """The store that uploaded to ``stream`` last (None: nothing uploaded yet)."""
    s = t.streams.c
    async with db.read() as conn:
        store = (await conn.execute(select(s.store_id).where(s.device_id == device, s.stream == stream)
                                    .order_by(s.updated_at.desc()).limit(1))).scalar()
    return None if store is None else str(store)


async def readings(
    db: Database, device: str, stream: str, store: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """Stored reading items of one store ``seq > after``, oldest first, exactly as the device sent them."""
    r = t.readings.c
    async with db.read() as conn:
        lines = (await conn.execute(select(r.line).where(
            r.device_id == device, r.stream == stream, r.store_id == store, r.seq > after)
            .order_by(r.seq).limit(limit))).scalars()
        return [json.loads(line) for line in lines]


async def daily_energy(db: Database, device: str, start: date, end: date, tz: str) -> list[dict[str, Any]]:
    """Per local day ``start <= day <= end`` in ``tz``: Wh sums of the quarter-hour slots,
    with how many slots were stored and how many of them were complete."""
    zone = ZoneInfo(tz)
    lo = datetime.combine(start, datetime.min.time(), zone).timestamp()
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone).timestamp()
    doc = t.documents.c
    async with db.read() as conn:
        rows = (await conn.execute(select(doc.ts, doc.data).where(
            doc.device_id == device, doc.stream == "energy", doc.ts >= lo, doc.ts < hi).order_by(doc.ts))).all()
    days: dict[str, dict[str, Any]] = {}
    for ts, data in rows:
        slot = json.loads(data)
        day = datetime.fromtimestamp(ts, zone).date().isoformat()
        total = days.setdefault(day, {"day": day, **{f: 0.0 for f in ENERGY_FIELDS}, "slots": 0, "complete_slots": 0})
        for f in ENERGY_FIELDS:
            value = slot.get(f)
            total[f] += value if is_number(value) else 0.0  # stored before the value checks: skip
        total["slots"] += 1
        total["complete_slots"] += 1 if slot.get("complete") else 0
    return [{**d, **{f: round(d[f], 3) for f in ENERGY_FIELDS}} for d in days.values()]


def check_stream(stream: str) -> str:
    if stream not in STREAMS:
        raise ValueError(f"stream: got {stream!r}, allowed: {', '.join(STREAMS)}")
    return stream
