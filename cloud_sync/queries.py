"""Read side: what operators (and each device, about itself) can ask the aggregator."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloud_sync.db import Database
from cloud_sync.savings import month_savings
from common.sync_protocol import STREAMS
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
    async with db.transaction(readonly=True) as tx:
        row = await tx.fetchrow(
            "SELECT last_seq, last_ts, backlog FROM streams WHERE device_id = $1 AND stream = $2 AND store_id = $3",
            device, stream, store,
        )
    last_seq, last_ts, backlog = row if row else (0, None, 0)
    return {"stream": stream, "store": store, "last_seq": last_seq, "last_ts": iso(last_ts), "backlog": backlog}


async def devices(db: Database, only: str | None = None) -> list[dict[str, Any]]:
    """Every device (or one): online, last seen, sync lag and backlog, latest telemetry, what
    its battery saved this month (:mod:`cloud_sync.savings`; None before any priced settlement).

    Per stream the store that uploaded last is the device's current one; ``stores`` counts
    how many stores (SD cards) the device has uploaded from."""
    now = time.time()
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT id, created_at, revoked_at, last_seen FROM devices"
            + (" WHERE id = $1" if only else "") + " ORDER BY id",
            *([only] if only else []),
        )
        streams = await tx.fetch(
            "SELECT device_id, stream, store_id, last_seq, last_ts, backlog, updated_at FROM streams"
            + (" WHERE device_id = $1" if only else "") + " ORDER BY updated_at",
            *([only] if only else []),
        )
        by_device: dict[str, dict[str, Any]] = {}
        for dev, stream, store, last_seq, last_ts, backlog, updated_at in streams:  # the latest store wins
            known = by_device.setdefault(dev, {}).get(stream, {"stores": 0})
            by_device[dev][stream] = {
                "store": store, "last_seq": last_seq, "last_ts": iso(last_ts), "backlog": backlog,
                "updated_at": iso(updated_at), "stores": known["stores"] + 1,
            }
        latest = {dev: await _latest_telemetry(tx, dev, by_device.get(dev, {})) for dev, *_ in rows}
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
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT count(*), coalesce(sum(CASE WHEN last_seen >= $1 THEN 1 ELSE 0 END), 0) FROM devices "
            "WHERE revoked_at IS NULL", since)
    return int(rows[0][0]), int(rows[0][1])


async def device_times(db: Database) -> list[tuple[str, float | None, float | None]]:
    """Per device not revoked: when it last uploaded and the time of its newest reading held
    (from the streams table, without reading any reading)."""
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT d.id, d.last_seen, max(s.last_ts) FROM devices d LEFT JOIN streams s"
            " ON s.device_id = d.id AND s.stream IN ('readings', 'readings_1min')"
            " WHERE d.revoked_at IS NULL GROUP BY d.id, d.last_seen ORDER BY d.id")
    return [(dev, seen, newest) for dev, seen, newest in rows]


async def _latest_telemetry(tx: Any, device: str, streams: dict[str, Any]) -> dict[str, Any] | None:
    newest = None
    for stream in ("readings", "readings_1min"):
        if stream not in streams:
            continue
        row = await tx.fetchrow(
            "SELECT ts, line FROM readings WHERE device_id = $1 AND stream = $2 AND store_id = $3"
            " ORDER BY seq DESC LIMIT 1",
            device, stream, streams[stream]["store"],
        )
        if row and (newest is None or row[0] > newest[0]):
            newest = row
    if newest is None:
        return None
    data = json.loads(newest[1])["data"]
    return {**data, "ts": newest[0], "time": iso(newest[0])}  # the stored time wins over the data's


async def current_store(db: Database, device: str, stream: str) -> str | None:
    """The store that uploaded to ``stream`` last (None: nothing uploaded yet)."""
    async with db.transaction(readonly=True) as tx:
        row = await tx.fetchrow(
            "SELECT store_id FROM streams WHERE device_id = $1 AND stream = $2 ORDER BY updated_at DESC LIMIT 1",
            device, stream,
        )
    return None if row is None else str(row[0])


async def readings(
    db: Database, device: str, stream: str, store: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """Stored reading items of one store ``seq > after``, oldest first, exactly as the device sent them."""
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT line FROM readings WHERE device_id = $1 AND stream = $2 AND store_id = $3 AND seq > $4"
            " ORDER BY seq LIMIT $5",
            device, stream, store, after, limit,
        )
    return [json.loads(r[0]) for r in rows]


async def daily_energy(db: Database, device: str, start: date, end: date, tz: str) -> list[dict[str, Any]]:
    """Per local day ``start <= day <= end`` in ``tz``: Wh sums of the quarter-hour slots,
    with how many slots were stored and how many of them were complete."""
    zone = ZoneInfo(tz)
    lo = datetime.combine(start, datetime.min.time(), zone).timestamp()
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone).timestamp()
    async with db.transaction(readonly=True) as tx:
        rows = await tx.fetch(
            "SELECT ts, data FROM documents WHERE device_id = $1 AND stream = 'energy' AND ts >= $2 AND ts < $3"
            " ORDER BY ts",
            device, lo, hi,
        )
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
