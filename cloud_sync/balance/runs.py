"""Settlement runs: a group and a period in, per member and quarter-hour results out, versioned.

One run, in one write transaction:

1. the period's quarter-hours with their imbalance price (the newest upload of the named series,
   which must cover the period);
2. every member slot of the group (memberships valid in that slot) with its valid schedule (the
   newest revision) and its actual (EDI meter values over the device's own), deviation and cost
   share, computed by the database in one ``INSERT … SELECT`` (no row passes through Python);
3. the few slots that need Python: substitute schedules where none was sent, anomalies
   (:mod:`cloud_sync.balance.anomalies`, from per-slot checks and per-day figures the database
   computes) handled by the operator's choice;
4. the input digest (schedules, actuals, their sources, prices, the choice) and the results
   digest (:mod:`cloud_sync.balance.digest`; PostgreSQL builds each member's text, hashed here
   member by member), with the totals, in one pass.

A run whose input digest equals the newest version's for that group and period is not stored
again: the answer is that version, unchanged. Any other run is the next version; older versions
stay as they were.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.balance import anomalies as checks
from cloud_sync.balance import intake
from cloud_sync.balance.anomalies import Anomaly, DayFigures
from cloud_sync.balance.prices import PriceError, PriceSeries, parse_csv
from cloud_sync.balance.registry import BalanceError
from cloud_sync.balance.schedule import SUBSTITUTE_WEEKS, substitute_wh
from cloud_sync.balance.settle import eur, kwh
from cloud_sync.balance.timegrid import SLOT_S, day_bounds, iso, local_day, same_weekday_before
from cloud_sync.db import Database
from cloud_sync.schema.balance import (
    balance_groups,
    imbalance_price_series,
    imbalance_prices,
    settlement_anomalies,
    settlement_runs,
)

log = structlog.get_logger(__name__)
MAX_PERIOD_S = 31 * 86400 + 3600
HISTORY_DAYS = 28  # anomalies and substitutes look back four weeks


class _Unchanged(Exception):
    """Roll the run back: its inputs are those of the newest version."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id


async def upload_prices(db: Database, name: str, content: str) -> dict[str, Any]:
    """Store a price series CSV under ``name``; the newest upload of a name is the one runs use."""
    if not name or len(name) > 64:
        raise BalanceError(400, f"name: got {name!r:.80}, expected 1-64 characters")
    try:
        series = parse_csv(content)
    except PriceError as exc:
        raise BalanceError(400, f"price series: {exc}") from None
    first, last = min(series.prices), max(series.prices)
    async with db.begin() as conn:
        result = await conn.execute(insert(imbalance_price_series).values(
            name=name, resolution_s=series.resolution_s, first_ts=first, end_ts=last + series.resolution_s,
            digest=hashlib.sha256(content.encode()).hexdigest(), uploaded_at=time.time()))
        series_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        await conn.execute(insert(imbalance_prices), [
            {"series_id": series_id, "ts": ts, "price_milli": p} for ts, p in sorted(series.prices.items())])
    return {"id": series_id, "name": name, "resolution_min": series.resolution_s // 60, "rows": len(series.prices),
            "start": iso(first), "end": iso(last + series.resolution_s)}


async def _prices(conn: AsyncConnection, name: str, start: int, end: int) -> tuple[int, dict[int, int]]:
    row = (await conn.execute(select(imbalance_price_series).where(imbalance_price_series.c.name == name)
                              .order_by(imbalance_price_series.c.id.desc()).limit(1))).first()
    if row is None:
        raise BalanceError(404, f"prices: no imbalance price series named {name!r} (nattery-cloud balance prices "
                                "upload)")
    lo = start - start % row.resolution_s
    rows = (await conn.execute(select(imbalance_prices.c.ts, imbalance_prices.c.price_milli).where(
        imbalance_prices.c.series_id == row.id, imbalance_prices.c.ts >= lo, imbalance_prices.c.ts < end))).all()
    try:
        return row.id, PriceSeries(row.resolution_s, {int(ts): int(p) for ts, p in rows}).per_slot(start, end)
    except PriceError as exc:
        raise BalanceError(422, f"prices: series {name!r} (upload {row.id}): {exc}") from None


async def settle_group(
    db: Database, group_id: str, start: int, end: int, prices: str = "reBAP", anomalies: str = "flag",
) -> dict[str, Any]:
    """Run (or recognise as unchanged) the settlement of ``group_id`` over ``[start, end)``."""
    if anomalies not in checks.CHOICES:
        raise BalanceError(400, f"anomalies: got {anomalies!r}, allowed: {', '.join(checks.CHOICES)}")
    if start % SLOT_S or end % SLOT_S or end <= start or end - start > MAX_PERIOD_S:
        raise BalanceError(400, f"period: {iso(start)} to {iso(end)}; expected quarter-hour boundaries, "
                                "start before end, at most 31 days")
    await intake.refresh(db, start - (HISTORY_DAYS + 1) * 86400, end)
    try:
        async with db.begin() as conn:
            if (await conn.execute(select(balance_groups.c.id).where(balance_groups.c.id == group_id))).first() is None:
                raise BalanceError(404, f"group: {group_id!r} is not a balance group")
            series_id, per_slot = await _prices(conn, prices, start, end)
            run_id = await _run(conn, db.kind, group_id, start, end, series_id, per_slot, anomalies)
    except _Unchanged as same:
        return {**await run_summary(db, same.run_id), "unchanged": True}
    return {**await run_summary(db, run_id), "unchanged": False}


async def _run(conn: AsyncConnection, kind: str, group_id: str, start: int, end: int, series_id: int,
               prices: Mapping[int, int], choice: str) -> int:
    if kind == "postgresql":  # the joins, the digest's sort and the checks stay in memory
        await conn.execute(text("SET LOCAL work_mem = '256MB'"))
        await conn.execute(text("SET LOCAL jit = off"))  # compiling these plans costs more than it saves
    newest = (await conn.execute(
        select(settlement_runs.c.id, settlement_runs.c.version, settlement_runs.c.input_digest)
        .where(settlement_runs.c.group_id == group_id, settlement_runs.c.period_start == start,
               settlement_runs.c.period_end == end).order_by(settlement_runs.c.version.desc()).limit(1))).first()
    clock = _Steps(group_id)
    await _slot_table(conn, kind, start, end, prices)
    await _temporary(conn, kind, "run_members", "melo_id TEXT PRIMARY KEY, k BIGINT NOT NULL")
    await conn.execute(text(MEMBERS_SQL.format(collate=' COLLATE "C"' if kind == "postgresql" else "")),
                       {"group": group_id, "start": start, "end": end})
    await _temporary(conn, kind, "run_positions", POSITIONS_COLUMNS)
    await conn.execute(text(POSITIONS_SQL), {"group": group_id, "start": start, "end": end})
    if kind == "postgresql":
        await conn.execute(text("ANALYZE run_positions"))
    clock.done("positions")
    found = await _anomalies(conn, group_id, start, clock)
    await _fix_up(conn, kind, found, choice)
    clock.done("substitutes")
    input_digest, results_digest, totals = await _digests(conn, kind, _tail(prices, {"anomalies": choice}))
    clock.done("digests")
    if newest is not None and newest.input_digest == input_digest:
        raise _Unchanged(int(newest.id))
    members = (await conn.execute(text("SELECT count(*) FROM run_members"))).scalar_one()
    result = await conn.execute(insert(settlement_runs).values(
        group_id=group_id, period_start=start, period_end=end, version=(newest.version if newest else 0) + 1,
        price_series_id=series_id, anomalies=choice, input_digest=input_digest, results_digest=results_digest,
        members=int(members), slots=len(prices), schedule_wh=totals[0], actual_wh=totals[1],
        deviation_wh=totals[2], cost_nano=totals[3], created_at=time.time()))
    run_id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0
    await conn.execute(text(
        "INSERT INTO settlement_results (run_id, melo_id, ts, schedule_wh, schedule_source, actual_wh, actual_source, "
        "deviation_wh, price_milli, cost_nano) SELECT CAST(:run AS INTEGER), melo_id, ts, schedule_wh, "
        "schedule_source, actual_wh, actual_source, actual_wh - schedule_wh, price_milli, "
        "(actual_wh - schedule_wh) * price_milli FROM run_positions"), {"run": run_id})
    clock.done("results")
    if found:
        await conn.execute(insert(settlement_anomalies), [
            {"run_id": run_id, "n": n, "melo_id": a.melo, "kind": a.kind, "start_ts": a.start, "end_ts": a.end,
             "detail": a.detail} for n, a in enumerate(found, 1)])
    return run_id


class _Steps:
    """How long each step of a run took, logged (the benchmark's breakdown)."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.last = time.perf_counter()

    def done(self, step: str) -> None:
        now = time.perf_counter()
        log.info("settlement_step", group=self.group_id, step=step, seconds=round(now - self.last, 3))
        self.last = now


async def _temporary(conn: AsyncConnection, kind: str, name: str, columns: str) -> None:
    """A temporary table for this run (dropped at commit on PostgreSQL, replaced on SQLite,
    whose pooled connection may still hold the last run's)."""
    await conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    await conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({columns})"
                            + (" ON COMMIT DROP" if kind == "postgresql" else "")))


async def _slot_table(conn: AsyncConnection, kind: str, start: int, end: int, prices: Mapping[int, int]) -> None:
    """``run_slots``: the period's slots (with price) and the four weeks before, each with its
    local day and position in it (for the per-day figures)."""
    await _temporary(conn, kind, "run_slots", "ts BIGINT PRIMARY KEY, price_milli BIGINT, day TEXT NOT NULL, "
                                              "pos BIGINT NOT NULL, settled INTEGER NOT NULL")
    rows: list[dict[str, Any]] = []
    day = local_day(start) - timedelta(days=HISTORY_DAYS)
    while day_bounds(day)[0] < end:
        lo, hi = day_bounds(day)
        rows.extend({"ts": ts, "price": prices.get(ts), "day": day.isoformat(), "pos": 1 + (ts - lo) // SLOT_S,
                     "settled": int(ts >= start)} for ts in range(lo, min(hi, end), SLOT_S))
        day += timedelta(days=1)
    await conn.execute(text("INSERT INTO run_slots (ts, price_milli, day, pos, settled) "
                            "VALUES (:ts, :price, :day, :pos, :settled)"), rows)


# The group's members in the period, numbered in the digest's order (byte order of the MeLo-ID;
# every membership overlapping the period has slots in it, both being whole quarter-hours), so
# the digests sort the positions by two integers instead of by text.
MEMBERS_SQL = """
INSERT INTO run_members (melo_id, k)
SELECT melo_id, row_number() OVER (ORDER BY melo_id{collate}) FROM (
  SELECT DISTINCT melo_id FROM group_memberships
  WHERE group_id = :group AND start_ts < :end AND (end_ts IS NULL OR end_ts > :start)
) m
"""

POSITIONS_COLUMNS = ("melo_id TEXT NOT NULL, k BIGINT NOT NULL, ts BIGINT NOT NULL, day TEXT NOT NULL, pos BIGINT NOT NULL, "
                     "price_milli BIGINT NOT NULL, schedule_wh BIGINT NOT NULL, schedule_source TEXT NOT NULL, "
                     "import_wh BIGINT, export_wh BIGINT, actual_wh BIGINT NOT NULL, actual_source TEXT NOT NULL")

# Each member slot: the schedule in force, the best actual (EDI over the device's own). A slot
# without an actual is settled as scheduled ('missing'). The period bounds on the joined tables
# keep their hash tables to the period, however many years they hold.
POSITIONS_SQL = """
INSERT INTO run_positions (melo_id, k, ts, day, pos, price_milli, schedule_wh, schedule_source, import_wh,
                           export_wh, actual_wh, actual_source)
SELECT x.melo_id, x.k, x.ts, x.day, x.pos, x.price_milli, x.schedule_wh, x.schedule_source, x.import_wh, x.export_wh,
       coalesce(x.import_wh - x.export_wh, x.schedule_wh), x.actual_source
FROM (
  SELECT m.melo_id, r.k, s.ts, s.day, s.pos, s.price_milli,
         coalesce(sc.import_wh - sc.export_wh, 0) AS schedule_wh,
         coalesce(sc.kind, 'none') AS schedule_source,
         coalesce(ae.import_wh, ad.import_wh) AS import_wh,
         coalesce(ae.export_wh, ad.export_wh) AS export_wh,
         CASE WHEN ae.melo_id IS NOT NULL THEN 'edi' WHEN ad.melo_id IS NOT NULL THEN 'device'
              ELSE 'missing' END AS actual_source
  FROM run_slots s
  JOIN group_memberships m ON m.group_id = :group AND m.start_ts <= s.ts AND (m.end_ts IS NULL OR s.ts < m.end_ts)
  JOIN run_members r ON r.melo_id = m.melo_id
  LEFT JOIN schedules_in_force sc ON sc.melo_id = m.melo_id AND sc.ts = s.ts AND sc.ts >= :start AND sc.ts < :end
  LEFT JOIN actuals ae ON ae.melo_id = m.melo_id AND ae.ts = s.ts AND ae.source = 'edi' AND ae.ts >= :start
       AND ae.ts < :end
  LEFT JOIN actuals ad ON ad.melo_id = m.melo_id AND ad.ts = s.ts AND ad.source = 'device' AND ad.ts >= :start
       AND ad.ts < :end
  WHERE s.settled = 1
) x
"""

SLOT_CHECK_SQL = """
SELECT p.melo_id, p.ts, p.import_wh, p.export_wh, l.connection_limit_w
FROM run_positions p JOIN balance_locations l ON l.melo_id = p.melo_id
WHERE p.import_wh < 0 OR p.export_wh < 0 OR (l.connection_limit_w IS NOT NULL
      AND (p.import_wh > l.connection_limit_w / 4 OR p.export_wh > l.connection_limit_w / 4))
"""

_FIGURES = ("min(ts), max(ts), count(*), min(import_wh), max(import_wh), min(export_wh), max(export_wh), "
            "sum(import_wh), sum(export_wh), sum(pos * import_wh), sum(pos * export_wh), sum(pos * pos * import_wh), "
            "sum(pos * pos * export_wh)")
SETTLED_DAYS_SQL = f"SELECT melo_id, day, {_FIGURES} FROM run_positions WHERE import_wh IS NOT NULL GROUP BY melo_id, day"
# The four weeks before, best source per slot (EDI first), of the group's members: one row per
# slot by grouping (a hash aggregate; a window over the sources sorted every slot by location).
HISTORY_DAYS_SQL = f"""
SELECT melo_id, day, {_FIGURES} FROM (
  SELECT a.melo_id, a.ts, min(s.day) AS day, min(s.pos) AS pos,
         coalesce(max(CASE WHEN a.source = 'edi' THEN a.import_wh END), max(a.import_wh)) AS import_wh,
         coalesce(max(CASE WHEN a.source = 'edi' THEN a.export_wh END), max(a.export_wh)) AS export_wh
  FROM actuals a JOIN run_slots s ON s.ts = a.ts AND s.settled = 0
  WHERE a.ts < :start AND a.melo_id IN (SELECT melo_id FROM group_memberships WHERE group_id = :group)
  GROUP BY a.melo_id, a.ts
) h GROUP BY melo_id, day
"""


async def _anomalies(conn: AsyncConnection, group_id: str, start: int, clock: _Steps) -> list[Anomaly]:
    found: list[Anomaly] = []
    flagged: dict[str, list[tuple[int, int, int]]] = {}
    limits: dict[str, int | None] = {}
    for melo, ts, imp, exp, limit in (await conn.execute(text(SLOT_CHECK_SQL))).all():
        flagged.setdefault(melo, []).append((int(ts), int(imp), int(exp)))
        limits[melo] = limit
    for melo, rows in sorted(flagged.items()):
        found.extend(checks.check_slots(melo, rows, limits[melo]))
    clock.done("slot_checks")
    settled = _figures((await conn.execute(text(SETTLED_DAYS_SQL))).all())
    clock.done("day_figures")
    history = _figures((await conn.execute(text(HISTORY_DAYS_SQL), {"start": start, "group": group_id})).all())
    clock.done("history_figures")
    for melo in sorted(settled):
        found.extend(checks.check_days(melo, settled[melo], history.get(melo, [])))
    clock.done("day_checks")
    return found


def _figures(rows: Sequence[Any]) -> dict[str, list[DayFigures]]:
    out: dict[str, list[DayFigures]] = {}
    for melo, _day, first, last, n, *figures in rows:
        f = [int(v) for v in figures]
        out.setdefault(melo, []).append(DayFigures(local_day(int(first)), int(first), int(last) + SLOT_S, int(n),
                                                   f[0], f[1], f[2], f[3], (f[4], f[5], f[6], f[7], f[8], f[9])))
    return out


async def _fix_up(conn: AsyncConnection, kind: str, found: Sequence[Anomaly], choice: str) -> None:
    """Substitute schedules where none was sent; anomalous actuals excluded or substituted."""
    missing = (await conn.execute(text("SELECT melo_id, ts FROM run_positions WHERE schedule_source = 'none'"))).all()
    affected = {m for m, _ in missing} | ({a.melo for a in found} if choice == "substitute" else set())
    wanted = {int(ts) for _, ts in missing} | ({t for a in found for t in range(a.start, a.end, SLOT_S)}
                                                if choice == "substitute" else set())
    history = await _net_history(conn, affected, _weeks_before(wanted))
    changes: list[dict[str, Any]] = []
    for melo, ts in missing:
        wh = substitute_wh(history.get(melo, {}), int(ts))
        if wh is not None:
            changes.append({"melo": melo, "ts": int(ts), "wh": wh})
    await _apply(conn, kind, changes, "schedule_wh = c.wh, schedule_source = 'substitute', actual_wh = "
                 "CASE WHEN run_positions.actual_source = 'missing' THEN c.wh ELSE run_positions.actual_wh END")
    if choice == "flag":
        return
    spans: dict[str, list[tuple[int, int]]] = {}
    for a in found:
        spans.setdefault(a.melo, []).append((a.start, a.end))
    rows = (await conn.execute(text(  # one pass over the positions, not one per anomaly
        "SELECT melo_id, ts, schedule_wh FROM run_positions WHERE melo_id IN :melos "
        "AND actual_source IN ('edi', 'device')").bindparams(bindparam("melos", expanding=True)),
        {"melos": sorted(spans)})).all() if spans else []
    actual_changes = []
    for melo, ts, schedule_wh in rows:
        if not any(lo <= ts < hi for lo, hi in spans[melo]):
            continue
        wh = substitute_wh(history.get(melo, {}), int(ts)) if choice == "substitute" else None
        actual_changes.append({"melo": melo, "ts": int(ts), "wh": int(schedule_wh) if wh is None else wh,
                               "source": "excluded" if wh is None else "substitute"})
    await _apply(conn, kind, actual_changes, "actual_wh = c.wh, actual_source = c.source")


async def _apply(conn: AsyncConnection, kind: str, changes: list[dict[str, Any]], assignments: str) -> None:
    """Set ``assignments`` (from ``c``: melo_id, ts, wh, source) on the positions named in
    ``changes``, in one join (a statement per row would scan the positions each time)."""
    if not changes:
        return
    await _temporary(conn, kind, "run_changes", "melo_id TEXT NOT NULL, ts BIGINT NOT NULL, wh BIGINT NOT NULL, "
                                                "source TEXT NOT NULL")
    await conn.execute(text("INSERT INTO run_changes (melo_id, ts, wh, source) VALUES (:melo, :ts, :wh, :source)"),
                       [{"source": "", **c} for c in changes])
    if kind == "postgresql":  # without statistics the planner may loop over the positions per change
        await conn.execute(text("ANALYZE run_changes"))
    await conn.execute(text(f"UPDATE run_positions SET {assignments} FROM run_changes c "
                            "WHERE run_positions.melo_id = c.melo_id AND run_positions.ts = c.ts"))


def _weeks_before(slots: set[int]) -> set[int]:
    """The slots a substitute for any of ``slots`` reads: the same wall-clock time 1-4 weeks back."""
    out = set()
    for ts in slots:
        for weeks in range(1, SUBSTITUTE_WEEKS + 1):
            then = same_weekday_before(ts, weeks)
            if then is not None:
                out.add(then)
    return out


async def _net_history(conn: AsyncConnection, melos: set[str], slots: set[int]) -> dict[str, dict[int, int]]:
    """Metered net import (best source) of ``melos`` in ``slots``."""
    if not melos or not slots:
        return {}
    rows = (await conn.execute(text(
        "SELECT a.melo_id, a.ts, a.import_wh - a.export_wh FROM actuals a WHERE a.melo_id IN :melos "
        "AND a.ts IN :slots AND (a.source = 'edi' OR NOT EXISTS (SELECT 1 FROM actuals e "
        "WHERE e.melo_id = a.melo_id AND e.ts = a.ts AND e.source = 'edi'))"
    ).bindparams(bindparam("melos", expanding=True), bindparam("slots", expanding=True)),
        {"melos": sorted(melos), "slots": sorted(slots)})).all()
    out: dict[str, dict[int, int]] = {}
    for melo, ts, net in rows:
        out.setdefault(melo, {})[int(ts)] = int(net)
    return out


INPUT_LINE = ("'p|' || melo_id || '|' || ts || '|' || schedule_wh || '|' || schedule_source || '|' || actual_wh "
              "|| '|' || actual_source")
RESULT_LINE = "'r|' || melo_id || '|' || ts || '|' || (actual_wh - schedule_wh) || '|' || ((actual_wh - schedule_wh) * price_milli)"


def _tail(prices: Mapping[int, int], options: Mapping[str, str]) -> str:
    return "".join(f"e|{ts}|{prices[ts]}\n" for ts in sorted(prices)) + "".join(
        f"o|{k}={options[k]}\n" for k in sorted(options))


_TOTALS = ("coalesce(sum(schedule_wh), 0), coalesce(sum(actual_wh), 0), coalesce(sum(actual_wh - schedule_wh), 0), "
           "coalesce(sum((actual_wh - schedule_wh) * price_milli), 0)")


async def _digests(conn: AsyncConnection, kind: str, tail: str) -> tuple[str, str, tuple[int, int, int, int]]:
    """The input digest (the positions as ``INPUT_LINE`` text, then ``tail``), the results digest
    (``RESULT_LINE``), both over the positions ordered by location in byte order, then slot (the
    text :mod:`cloud_sync.balance.digest` hashes), and the run's totals: schedule, actual,
    deviation (Wh) and cost (nano-EUR). One pass over the positions. PostgreSQL builds each
    member's text and the hashes go on here, member by member: a month of 10,000 members is
    over 2 GB of text, beyond what one PostgreSQL value can hold."""
    inputs, results = hashlib.sha256(), hashlib.sha256()
    totals = [0, 0, 0, 0]
    if kind == "postgresql":
        stream = await conn.stream(text(
            f"SELECT convert_to(string_agg({INPUT_LINE} || chr(10), '' ORDER BY ts), 'UTF8'), "
            f"convert_to(string_agg({RESULT_LINE} || chr(10), '' ORDER BY ts), 'UTF8'), {_TOTALS} "
            "FROM run_positions GROUP BY k ORDER BY k"))
        async for member_inputs, member_results, *sums in stream:  # bytes: no decoding and encoding again
            inputs.update(member_inputs)
            results.update(member_results)
            totals = [t + int(v) for t, v in zip(totals, sums, strict=True)]
    else:
        stream = await conn.stream(text(f"SELECT {INPUT_LINE}, {RESULT_LINE} FROM run_positions ORDER BY k, ts"))
        async for line, result in stream:
            inputs.update(f"{line}\n".encode())
            results.update(f"{result}\n".encode())
        totals = [int(v) for v in (await conn.execute(text(f"SELECT {_TOTALS} FROM run_positions"))).one()]
    inputs.update(tail.encode())
    return inputs.hexdigest(), results.hexdigest(), (totals[0], totals[1], totals[2], totals[3])


async def run_summary(db: Database, run_id: int) -> dict[str, Any]:
    async with db.read() as conn:
        run = (await conn.execute(select(settlement_runs).where(settlement_runs.c.id == run_id))).first()
        if run is None:
            raise BalanceError(404, f"run: no settlement run {run_id}")
        found = (await conn.execute(select(func.count()).select_from(settlement_anomalies)
                                    .where(settlement_anomalies.c.run_id == run_id))).scalar_one()
    return {
        "run": run.id, "group": run.group_id, "start": iso(run.period_start), "end": iso(run.period_end),
        "version": run.version, "price_series": run.price_series_id, "anomalies_choice": run.anomalies,
        "anomalies": found, "members": run.members, "slots": run.slots,
        "schedule_kwh": str(kwh(run.schedule_wh)), "actual_kwh": str(kwh(run.actual_wh)),
        "deviation_kwh": str(kwh(run.deviation_wh)), "cost_eur": str(eur(run.cost_nano)),
        "input_digest": run.input_digest, "results_digest": run.results_digest,
    }


async def list_runs(db: Database, group_id: str) -> list[dict[str, Any]]:
    """Every run of ``group_id``, newest first."""
    async with db.read() as conn:
        ids = (await conn.execute(select(settlement_runs.c.id).where(settlement_runs.c.group_id == group_id)
                                  .order_by(settlement_runs.c.id.desc()))).scalars().all()
    return [await run_summary(db, int(i)) for i in ids]
