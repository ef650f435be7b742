"""Benchmark: one balance group's settlement run, checked against an independent reference.

    python -m tools.bench.settlement --members 10000 --days 1 [--db postgresql://…] [--seed 1]

N members with real household profiles (``/work/shared/data/household``: the standard H25
household and the five stochastic 1-5 person households, each member one of them on a day of
its own choosing, scaled 0.6-1.6, with 0-10 kWp of PV and a 5-15 kWh battery) in one group over
D local days from 2024-06-10. Each member's **schedule** is what a device commits: its forecast
(the same weekday a week earlier) run through a self-consumption battery; its **actual** is the
real day through the same battery, so the deviation is the forecast error. One member in a
hundred sent no schedule and gets the substitute (four weeks of its metered history are
loaded). The imbalance price is the 2024 day-ahead price of each hour as a stand-in for the reBAP
(uploaded through the real CSV validation). Members, memberships, schedules and actuals are
loaded with COPY; then ``settle_group`` runs (``settle_s``, with each of its steps in
``settle_steps_s``; the setup is timed apart: ``simulate_s`` for the profiles and the reference,
``load_s`` for loading) and the per-slot group deviation and cost, and every member's, are
compared with a reference computed here in numpy/Python from the generated profiles
(``max_abs_error_kwh``, ``max_abs_error_eur``).

Without ``--db`` a fresh PostgreSQL database on 127.0.0.1:5432 is created and dropped. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Table, func, select
from structlog.testing import capture_logs

from cloud_sync.balance import registry, runs
from cloud_sync.balance.timegrid import day_bounds
from cloud_sync.db import Database, connect, insert_rows
from cloud_sync.schema.balance import (
    actuals,
    balance_locations,
    group_memberships,
    schedule_slots,
    schedules_in_force,
    settlement_results,
)
from cloud_sync.schema.edi import edi_locations
from common.market_ids import bdew_check_digit

DATA = Path(os.environ.get("NATTERY_DATA", "/work/shared/data"))
HOUSEHOLDS = ["household/de_household_15min_2024.csv"] + [
    f"household/stochastic/de_household_stochastic_{n}p_15min_2024.csv" for n in range(1, 6)]
PRICES = "prices/de_lu_day_ahead_hourly_2015_2024.csv"
FIRST_DAY = date(2024, 6, 10)
HISTORY_DAYS = 28
PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def read_profiles() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slot starts (epoch s), load kW per household (rows), PV kW/kWp."""
    loads, pv, ts = [], None, None
    for name in HOUSEHOLDS:
        with open(DATA / name) as f:
            rows = list(csv.reader(f))[1:]
        loads.append(np.array([float(r[1]) for r in rows]))
        if ts is None:
            ts = np.array([int(datetime.fromisoformat(r[0]).timestamp()) for r in rows], dtype=np.int64)
            pv = np.array([float(r[2]) for r in rows])
    assert ts is not None and pv is not None
    return ts, np.vstack(loads), pv


def battery_net_wh(load_wh: np.ndarray, pv_wh: np.ndarray, capacity_wh: np.ndarray) -> np.ndarray:
    """Grid net import (Wh) of a self-consumption battery, members in rows, slots in columns:
    surplus charges it, deficit discharges it, 2.5 kW at most (625 Wh per quarter-hour)."""
    return battery_run(load_wh, pv_wh, capacity_wh)[0]


def battery_run(load_wh: np.ndarray, pv_wh: np.ndarray,
                capacity_wh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`battery_net_wh` and the flexibility around it per slot as a device reports it
    (``device/schedules.py``; this battery: lossless, floor 0 %, 625 Wh a quarter-hour each
    way): how many Wh more and less the home could import, whole Wh rounded down."""
    soc = capacity_wh * 0.3
    out, up, down = np.empty_like(load_wh), np.empty_like(load_wh), np.empty_like(load_wh)
    for k in range(load_wh.shape[1]):
        surplus = pv_wh[:, k] - load_wh[:, k]
        charge = np.clip(np.minimum(surplus, capacity_wh - soc), 0, 625)
        discharge = np.clip(np.minimum(-surplus, soc), 0, 625)
        up[:, k] = np.minimum(capacity_wh - soc, 625) - (charge - discharge)
        down[:, k] = (charge - discharge) + np.minimum(soc, 625)
        soc = soc + charge - discharge
        out[:, k] = load_wh[:, k] - pv_wh[:, k] + charge - discharge
    return (np.rint(out).astype(np.int64), np.floor(np.maximum(up, 0)).astype(np.int64),
            np.floor(np.maximum(down, 0)).astype(np.int64))


def simulate(n: int, days: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    ts, loads, pv = read_profiles()
    start, _ = day_bounds(FIRST_DAY)
    end = day_bounds(FIRST_DAY + timedelta(days=days - 1))[1]
    slots = (end - start) // 900
    history_start = day_bounds(FIRST_DAY - timedelta(days=HISTORY_DAYS))[0]
    hist_slots = (start - history_start) // 900
    household = rng.integers(0, len(HOUSEHOLDS), n)
    shift_weeks = rng.integers(-8, 9, n)  # each member lives a day of its own (same weekday)
    scale = rng.uniform(0.6, 1.6, n)
    kwp = rng.choice([0, 0, 3, 5, 8, 10], n)
    capacity = rng.uniform(5000, 15000, n)

    def window(first: int, count: int, weeks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.searchsorted(ts, first) + (weeks * 672)[:, None] + np.arange(count)[None, :]
        index = np.clip(index, 0, len(ts) - 1)
        load_wh = loads[household[:, None], index] * 250 * scale[:, None]
        pv_wh = pv[index] * 250 * kwp[:, None]
        return load_wh, pv_wh

    actual = battery_net_wh(*window(start, slots, shift_weeks), capacity)
    forecast, flex_up, flex_down = battery_run(*window(start, slots, shift_weeks - 1), capacity)
    unscheduled = rng.random(n) < 0.01
    history = battery_net_wh(*window(history_start, hist_slots, shift_weeks), capacity)
    hourly = {}
    with open(DATA / PRICES) as f:
        for row in list(csv.reader(f))[1:]:
            hour = int(datetime.fromisoformat(row[0]).timestamp())
            if start - 3600 <= hour < end:
                hourly[hour] = row[1]
    return {"n": n, "start": start, "end": end, "slots": slots, "history_start": history_start,
            "actual": actual, "forecast": forecast, "flex_up": flex_up, "flex_down": flex_down,
            "unscheduled": unscheduled, "history": history,
            "hourly": hourly}


def melo(i: int) -> str:
    return f"DE000123456789{i:019d}"


def reference(sim: dict[str, Any]) -> tuple[dict[int, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Per slot and per member: (deviation Wh, cost nano-EUR), computed from the arrays. A member
    without a schedule is scheduled at the rounded-half-up mean of its same-weekday history
    (June: no clock change within the five weeks, so a week is 672 slots)."""
    start, slots = sim["start"], sim["slots"]
    price = np.array([round(float(sim["hourly"][start + 900 * k - (start + 900 * k) % 3600]) * 1000)
                      for k in range(slots)], dtype=np.int64)
    schedule = sim["forecast"].copy()
    history = np.concatenate([sim["history"], sim["actual"]], axis=1)
    base = sim["history"].shape[1]
    for i in np.flatnonzero(sim["unscheduled"]):
        for k in range(slots):
            back = [history[i, base + k - 672 * w] for w in range(1, 5) if base + k - 672 * w >= 0]
            total, count = int(sum(back)), len(back)
            schedule[i, k] = (2 * total + count) // (2 * count)
    deviation = sim["actual"] - schedule
    cost = deviation * price[None, :]
    per_slot = {start + 900 * k: (int(deviation[:, k].sum()), int(cost[:, k].sum())) for k in range(slots)}
    per_member = {melo(i): (int(deviation[i].sum()), int(cost[i].sum())) for i in range(sim["n"])}
    return per_slot, per_member


async def load(db: Database, sim: dict[str, Any]) -> None:
    """Participants, group and prices through the library; locations, memberships, schedules and
    actuals with COPY (PostgreSQL) or bulk inserts."""
    brp = "990000000001" + str(bdew_check_digit("990000000001"))
    await registry.add_participant(db, brp, "293", "Bench BRP", ["brp"])
    await registry.add_group(db, "BENCH", "benchmark fleet", brp)
    rows = "".join(f"{datetime.fromtimestamp(h, UTC):%Y-%m-%dT%H:%M:%SZ},{p}\n" for h, p in sorted(sim["hourly"].items()))
    await runs.upload_prices(db, "reBAP", "timestamp_utc,price_eur_mwh\n" + rows)
    n, start, now = sim["n"], sim["start"], time.time()
    # rows in each table's column order (``insert_rows``)
    tables: dict[Table, list[tuple[Any, ...]]] = {
        edi_locations: [(melo(i), None, None, now) for i in range(n)],
        balance_locations: [(melo(i), 30_000, now) for i in range(n)],
        group_memberships: [(i + 1, melo(i), "BENCH", start, None, now, None) for i in range(n)],
    }
    schedule_rows, actual_rows = [], []
    for i in range(n):
        m = melo(i)
        if not sim["unscheduled"][i]:
            flex = zip(sim["forecast"][i].tolist(), sim["flex_up"][i].tolist(), sim["flex_down"][i].tolist(),
                       strict=True)
            for k, (wh, up, down) in enumerate(flex):
                schedule_rows.append((m, start + 900 * k, 0, "day_ahead", max(wh, 0), max(-wh, 0), up, down, now))
        for k, wh in enumerate(sim["actual"][i].tolist()):
            actual_rows.append((m, start + 900 * k, "device", max(wh, 0), max(-wh, 0), now))
        if sim["unscheduled"][i]:
            for k, wh in enumerate(sim["history"][i].tolist()):
                actual_rows.append((m, sim["history_start"] + 900 * k, "device", max(wh, 0), max(-wh, 0), now))
    tables[schedule_slots] = schedule_rows
    tables[schedules_in_force] = [row[:6] for row in schedule_rows]
    tables[actuals] = actual_rows
    async with db.begin() as conn:
        for table, rows_ in tables.items():
            await insert_rows(conn, table, rows_)
        if db.kind == "postgresql":
            await conn.execute(select(func.setval("group_memberships_id_seq", n)))
            for table in tables:
                await conn.exec_driver_sql(f"ANALYZE {table.name}")


async def compare(db: Database, run: int, per_slot: dict[int, tuple[int, int]],
                  per_member: dict[str, tuple[int, int]]) -> tuple[int, int, int]:
    r = settlement_results.c
    async with db.read() as conn:
        slots = (await conn.execute(select(r.ts, func.sum(r.deviation_wh), func.sum(r.cost_nano))
                                    .where(r.run_id == run).group_by(r.ts))).all()
        members = (await conn.execute(select(r.melo_id, func.sum(r.deviation_wh), func.sum(r.cost_nano))
                                      .where(r.run_id == run).group_by(r.melo_id))).all()
    wh = max((abs(int(d) - per_slot[int(t)][0]) for t, d, _ in slots), default=0)
    wh = max([wh] + [abs(int(d) - per_member[m][0]) for m, d, _ in members])
    nano = max(abs(int(c) - per_slot[int(t)][1]) for t, _, c in slots)
    nano = max([nano] + [abs(int(c) - per_member[m][1]) for m, _, c in members])
    missing = (len(per_slot) - len(slots)) + (len(per_member) - len(members))
    return wh, nano, missing


async def bench(members: int, days: int, target: str | None, seed: int) -> dict[str, Any]:
    made = None
    if target is None:
        import asyncpg

        made = f"nattery_bench_settlement_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f"CREATE DATABASE {made}")
        await admin.close()
        target = PG_ADMIN.rsplit("/", 1)[0] + "/" + made
    try:
        started = time.perf_counter()
        sim = simulate(members, days, seed)
        per_slot, per_member = reference(sim)
        simulate_s = time.perf_counter() - started
        db = await connect(target)
        try:
            started = time.perf_counter()
            await load(db, sim)
            load_s = time.perf_counter() - started
            started = time.perf_counter()
            with capture_logs() as logged:
                result = await runs.settle_group(db, "BENCH", sim["start"], sim["end"])
            settle_s = time.perf_counter() - started
            steps = {e["step"]: e["seconds"] for e in logged if e.get("event") == "settlement_step"}
            started = time.perf_counter()
            again = await runs.settle_group(db, "BENCH", sim["start"], sim["end"])
            rerun_s = time.perf_counter() - started
            wh, nano, missing = await compare(db, result["run"], per_slot, per_member)
        finally:
            await db.close()
    finally:
        if made is not None:
            import asyncpg

            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f"DROP DATABASE IF EXISTS {made} WITH (FORCE)")
            await admin.close()
    rows = members * sim["slots"]
    return {
        "members": members, "days": days, "slots": sim["slots"], "rows": rows, "database": db.kind,
        "simulate_s": round(simulate_s, 2), "load_s": round(load_s, 2), "settle_s": round(settle_s, 3),
        "settle_steps_s": steps, "rows_per_s": round(rows / settle_s),
        "rerun_s": round(rerun_s, 3), "rerun_unchanged": again["unchanged"] and again["run"] == result["run"],
        "substitutes": int(sim["unscheduled"].sum()), "anomalies": result["anomalies"],
        "deviation_kwh": result["deviation_kwh"], "cost_eur": result["cost_eur"],
        "max_abs_error_kwh": wh / 1000, "max_abs_error_eur": nano / 1e9, "missing_rows": missing,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--db", default=None, help="postgresql://… or a SQLite path (default: a fresh PostgreSQL)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = asyncio.run(bench(args.members, args.days, args.db, args.seed))
    print(f"{figures['members']} members x {figures['slots']} quarter-hours on {figures['database']}: "
          f"simulated in {figures['simulate_s']} s, loaded in {figures['load_s']} s (setup, not timed), "
          f"settled in {figures['settle_s']} s "
          f"({figures['rows_per_s']:,} member-slots/s), rerun {figures['rerun_s']} s "
          f"(unchanged: {figures['rerun_unchanged']}); error against the reference "
          f"{figures['max_abs_error_kwh']} kWh / {figures['max_abs_error_eur']} EUR; load average {figures['load_avg_1m']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
