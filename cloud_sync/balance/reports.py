"""What a run says, per quarter-hour or per member, as JSON rows, CSV or Parquet; and a group's
day-ahead position (the schedule its balance-responsible party nominates).

Quantities are exact decimals (kWh with three decimals, EUR/MWh, EUR with up to nine): JSON
carries them as strings, CSV as plain numbers, Parquet as ``decimal128`` columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from cloud_sync.balance.registry import BalanceError
from cloud_sync.balance.schedule import substitute_wh
from cloud_sync.balance.settle import eur, eur_mwh, kwh
from cloud_sync.balance.timegrid import day_bounds, iso
from cloud_sync.db import Database

FORMATS = ("json", "csv", "parquet")
VIEWS = ("slot", "member")
#: Column → (Parquet decimal precision, scale); other columns are text or integers.
_DECIMALS = {"schedule_kwh": (18, 3), "actual_kwh": (18, 3), "deviation_kwh": (18, 3),
             "price_eur_mwh": (18, 3), "cost_eur": (28, 9)}

BY_SLOT = """
SELECT ts, sum(schedule_wh), sum(actual_wh), sum(deviation_wh), min(price_milli), sum(cost_nano), count(*),
       sum(CASE WHEN schedule_source = 'substitute' THEN 1 ELSE 0 END),
       sum(CASE WHEN actual_source IN ('excluded', 'substitute', 'missing') THEN 1 ELSE 0 END)
FROM settlement_results WHERE run_id = :run GROUP BY ts ORDER BY ts
"""
BY_MEMBER = """
SELECT melo_id, sum(schedule_wh), sum(actual_wh), sum(deviation_wh), sum(cost_nano), count(*),
       sum(CASE WHEN schedule_source = 'substitute' THEN 1 ELSE 0 END),
       sum(CASE WHEN actual_source IN ('excluded', 'substitute', 'missing') THEN 1 ELSE 0 END)
FROM settlement_results WHERE run_id = :run GROUP BY melo_id ORDER BY melo_id
"""


async def run_rows(db: Database, run_id: int, view: str) -> list[dict[str, Any]]:
    """The run's rows by quarter-hour (the group's position) or by member (its share)."""
    if view not in VIEWS:
        raise BalanceError(400, f"by: got {view!r}, allowed: {', '.join(VIEWS)}")
    async with db.read() as conn:
        rows = (await conn.execute(text(BY_SLOT if view == "slot" else BY_MEMBER), {"run": run_id})).all()
    if view == "slot":
        return [{"start": iso(int(ts)), "schedule_kwh": kwh(int(s)), "actual_kwh": kwh(int(a)),
                 "deviation_kwh": kwh(int(d)), "price_eur_mwh": eur_mwh(int(p)), "cost_eur": eur(int(c)),
                 "members": int(n), "substitute_schedules": int(sub), "actuals_replaced": int(rep)}
                for ts, s, a, d, p, c, n, sub, rep in rows]
    return [{"melo": m, "schedule_kwh": kwh(int(s)), "actual_kwh": kwh(int(a)), "deviation_kwh": kwh(int(d)),
             "cost_eur": eur(int(c)), "slots": int(n), "substitute_schedules": int(sub), "actuals_replaced": int(rep)}
            for m, s, a, d, c, n, sub, rep in rows]


async def anomalies(db: Database, run_id: int) -> list[dict[str, Any]]:
    async with db.read() as conn:
        rows = (await conn.execute(text(
            "SELECT melo_id, kind, start_ts, end_ts, detail FROM settlement_anomalies WHERE run_id = :run ORDER BY n"),
            {"run": run_id})).all()
    return [{"melo": m, "kind": k, "start": iso(int(s)), "end": iso(int(e)), "detail": d} for m, k, s, e, d in rows]


def as_json(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: str(v) if isinstance(v, Decimal) else v for k, v in r.items()} for r in rows]


def as_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def as_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    import pyarrow as pa  # the aggregator's extra; only reports need it
    import pyarrow.parquet as pq

    fields = []
    for name in (rows[0] if rows else {}):
        if name in _DECIMALS:
            fields.append(pa.field(name, pa.decimal128(*_DECIMALS[name])))
        elif isinstance(rows[0][name], int):
            fields.append(pa.field(name, pa.int64()))
        else:
            fields.append(pa.field(name, pa.string()))
    table = pa.Table.from_pylist(list(rows), schema=pa.schema(fields))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


async def nomination(db: Database, group_id: str, day: date) -> list[dict[str, Any]]:
    """The group's day-ahead position for local ``day``: per quarter-hour the sum of its members'
    day-ahead schedules (revision 0), members without one at their substitute, counted; with the
    flexibility around it: ``flex_up_kwh`` how much more and ``flex_down_kwh`` how much less the
    group could import in that quarter-hour within its members' battery and connection limits,
    summed over the members whose devices sent it (``members_with_flex``; a substitute has none).
    Like each member's, the group's flexibility holds for one slot at a time (see
    :mod:`device.schedules`)."""
    start, end = day_bounds(day)
    async with db.read() as conn:
        if (await conn.execute(text("SELECT 1 FROM balance_groups WHERE id = :g"), {"g": group_id})).first() is None:
            raise BalanceError(404, f"group: {group_id!r} is not a balance group")
        rows = (await conn.execute(text(
            "SELECT m.melo_id, s.ts, s.import_wh - s.export_wh, s.flex_up_wh, s.flex_down_wh FROM group_memberships m "
            "JOIN schedule_slots s ON s.melo_id = m.melo_id AND s.revision = 0 AND s.ts >= :start AND s.ts < :end "
            "AND m.start_ts <= s.ts AND (m.end_ts IS NULL OR s.ts < m.end_ts) WHERE m.group_id = :g"),
            {"g": group_id, "start": start, "end": end})).all()
        members = (await conn.execute(text(
            "SELECT melo_id, start_ts, end_ts FROM group_memberships WHERE group_id = :g AND start_ts < :end "
            "AND (end_ts IS NULL OR end_ts > :start)"), {"g": group_id, "start": start, "end": end})).all()
        sent = {(m, int(ts)): (int(wh), up, down) for m, ts, wh, up, down in rows}
        lacking = {m for m, lo, hi in members if any((m, ts) not in sent for ts in range(max(lo, start),
                                                                                    min(hi or end, end), 900))}
        history = await _history(conn, lacking, start - 29 * 86400, start)
    out = []
    for ts in range(start, end, 900):
        total, up_total, down_total, substitutes, flexible, count = 0, 0, 0, 0, 0, 0
        for m, lo, hi in members:
            if not (lo <= ts and (hi is None or ts < hi)):
                continue
            count += 1
            if (m, ts) not in sent:
                total += substitute_wh(history.get(m, {}), ts) or 0
                substitutes += 1
                continue
            wh, up, down = sent[m, ts]
            total += wh
            if up is not None and down is not None:
                up_total, down_total, flexible = up_total + int(up), down_total + int(down), flexible + 1
        out.append({"start": iso(ts), "schedule_kwh": kwh(total), "flex_up_kwh": kwh(up_total),
                    "flex_down_kwh": kwh(down_total), "members": count, "substitutes": substitutes,
                    "members_with_flex": flexible})
    return out


async def _history(conn: Any, melos: set[str], lo: int, hi: int) -> dict[str, dict[int, int]]:
    out: dict[str, dict[int, int]] = {}
    for melo in sorted(melos):
        rows = (await conn.execute(text(
            "SELECT ts, import_wh - export_wh, source FROM actuals WHERE melo_id = :m AND ts >= :lo AND ts < :hi"),
            {"m": melo, "lo": lo, "hi": hi})).all()
        best: dict[int, tuple[int, str]] = {}
        for ts, wh, source in rows:
            if int(ts) not in best or source == "edi":
                best[int(ts)] = (int(wh), source)
        out[melo] = {ts: wh for ts, (wh, _) in best.items()}
    return out
