"""Benchmark: drain a backlog of 1,000,000 readings from a device store to the aggregator.

    python -m tools.bench.sync [--readings N] [--batch-size N] [--no-postgres]

Fills a fresh device database with realistic telemetry snapshots (every register of the
shipped Deye map plus the roles, a day's PV curve, a wandering load, the battery covering the
difference, energy counters that add up), starts ``nattery-cloud serve`` on 127.0.0.1, and
runs ``nattery sync --drain`` as a separate process. Peak RSS of both processes is sampled
from ``/proc/<pid>/status`` (VmHWM). Afterwards the aggregator's rows are compared with the
device's readings by sequence number and checksum: ``lost`` and ``duplicated`` must be 0.
When PostgreSQL answers on 127.0.0.1:5432 (or ``$BENCH_POSTGRES_URL``) the same drain runs
against a fresh PostgreSQL database. The last line is one JSON object; its ``ok`` says whether
every backend that ran met the targets (30,000 readings/s, device peak RSS 150 MB, nothing
lost or duplicated).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from cloud_sync.db import connect
from cloud_sync.schema.sync import readings as stored_readings
from device.modbus.registermap import load_map
from device.store import Reading, Store
from tools.bench.aggregator import cpu_s, peak_rss_mb, pg_database, register, serve, stop


def realistic_readings(start: float, count: int, interval_s: float = 5.0, seed: int = 1) -> Iterator[Reading]:
    """Telemetry snapshots as the bridge stores them (Deye single-phase hybrid map)."""
    rnd = random.Random(seed)
    names = list(load_map("deye_hybrid_1p").registers)
    static = {n: float(rnd.randint(0, 100)) for n in names}
    soc, load = 55.0, 400.0
    counters = {"import": 1_234_500.0, "export": 845_200.0, "charge": 2_100_000.0,
                "discharge": 1_950_000.0, "pv": 6_400_000.0, "load": 5_300_000.0}
    for i in range(count):
        ts = start + i * interval_s
        hour = (ts % 86_400) / 3600
        pv = max(0.0, 4200 * math.sin(math.pi * (hour - 6) / 12)) * rnd.uniform(0.85, 1.0) if 6 < hour < 18 else 0.0
        load = min(max(load + rnd.gauss(0, 40), 150.0), 6000.0)
        battery = max(min(load - pv, 3000.0), -3000.0)
        if (soc <= 10 and battery > 0) or (soc >= 100 and battery < 0):
            battery = 0.0
        grid = load - pv - battery
        soc = min(max(soc - battery * interval_s / 3600 / 100, 0.0), 100.0)
        wh = interval_s / 3600
        counters["import"] += max(grid, 0) * wh
        counters["export"] += max(-grid, 0) * wh
        counters["charge"] += max(-battery, 0) * wh
        counters["discharge"] += max(battery, 0) * wh
        counters["pv"] += pv * wh
        counters["load"] += load * wh
        registers = dict(static)
        registers.update({
            "battery_soc": round(soc), "battery_power": round(battery), "grid_power": round(grid),
            "load_power": round(load), "pv1_power": round(pv * 0.55), "pv2_power": round(pv * 0.45),
            "battery_voltage": round(51 + soc / 50 + rnd.gauss(0, 0.05), 2),
            "battery_current": round(battery / 52, 2), "grid_voltage": round(rnd.gauss(230, 1.5), 1),
            "grid_frequency": round(rnd.gauss(50, 0.02), 2), "battery_temperature": round(rnd.gauss(24, 0.3), 1),
            "pv1_voltage": round(rnd.gauss(310, 5), 1) if pv else 0.0,
            "pv2_voltage": round(rnd.gauss(300, 5), 1) if pv else 0.0,
            "total_grid_import": round(counters["import"], -2), "total_grid_export": round(counters["export"], -2),
            "total_battery_charge": round(counters["charge"], -2),
            "total_battery_discharge": round(counters["discharge"], -2),
            "total_pv": round(counters["pv"], -2), "total_load": round(counters["load"], -2),
        })
        roles: dict[str, Any] = {
            "soc_pct": float(round(soc)), "battery_w": float(round(battery)), "pv_w": float(round(pv)),
            "grid_w": float(round(grid)), "load_w": float(round(load)), "battery_temp_c": registers["battery_temperature"],
            "state": "normal",
            "energy_import_wh": registers["total_grid_import"], "energy_export_wh": registers["total_grid_export"],
            "energy_charge_wh": registers["total_battery_charge"],
            "energy_discharge_wh": registers["total_battery_discharge"],
            "energy_pv_wh": registers["total_pv"], "energy_load_wh": registers["total_load"],
        }
        yield Reading(ts, roles, registers)


def fill(path: Path, count: int, chunk: int = 5000, interval_s: float = 5.0) -> float:
    """Write ``count`` readings in batches like the bridge does; returns rows/s."""
    store = Store(path)
    source = realistic_readings(time.time() - count * interval_s, count, interval_s)
    began = time.perf_counter()
    while batch := [r for _, r in zip(range(chunk), source, strict=False)]:
        store.insert_readings(batch)
    rate = count / (time.perf_counter() - began)
    store.close()
    return rate


def device_command() -> list[str]:
    return [sys.executable, "-c", "from device.cli import main; main()"]


def drain(device_db: Path, target: str, batch_size: int, workdir: Path) -> dict[str, Any]:
    """Register the device, start the aggregator, drain; returns the figures."""
    [credential] = asyncio.run(register(target, ["bench"]))
    aggregator, port = serve(target, workdir / "aggregator.log", log_level="warning")
    try:
        env = {**os.environ, "NATTERY_DEVICE_ID": "bench", "NATTERY_STORE_PATH": str(device_db),
               "NATTERY_CLOUD_CREDENTIAL": credential, "NATTERY_CLOUD_BATCH_SIZE": str(batch_size),
               "NATTERY_LOG_LEVEL": "warning", "NATTERY_DEVICE_DATA_DIR": str(workdir)}
        began = time.perf_counter()
        device = subprocess.Popen(
            [*device_command(), "sync", "--cloud", f"http://127.0.0.1:{port}", "--drain"],
            env=env, stdout=subprocess.PIPE, stderr=(workdir / "device.log").open("w"),
        )
        device_peak = aggregator_peak = device_cpu = 0.0
        aggregator_cpu_before = cpu_s(aggregator.pid)
        while device.poll() is None:
            device_peak = max(device_peak, peak_rss_mb(device.pid))
            aggregator_peak = max(aggregator_peak, peak_rss_mb(aggregator.pid))
            device_cpu = max(device_cpu, cpu_s(device.pid))
            time.sleep(0.2)
        seconds = time.perf_counter() - began
        aggregator_peak = max(aggregator_peak, peak_rss_mb(aggregator.pid))
        aggregator_cpu = cpu_s(aggregator.pid) - aggregator_cpu_before
        if device.returncode != 0:
            raise RuntimeError(f"device sync failed: {(workdir / 'device.log').read_text()[-2000:]}")
    finally:
        stop(aggregator)
    lost, duplicated = asyncio.run(compare(device_db, target))
    return {"drain_s": round(seconds, 2), "device_cpu_s": round(device_cpu, 1),
            "aggregator_cpu_s": round(aggregator_cpu, 1), "device_peak_rss_mb": round(device_peak, 1),
            "aggregator_peak_rss_mb": round(aggregator_peak, 1), "lost": lost, "duplicated": duplicated}


async def compare(device_db: Path, target: str, chunk: int = 20_000) -> tuple[int, int]:
    """``(lost, duplicated)``: device readings missing at the aggregator or stored differently
    (lost), and aggregator rows beyond one per device reading (duplicated). Both sides are
    walked in sequence order, a chunk at a time, so a million rows need little memory."""
    conn = sqlite3.connect(device_db)
    db = await connect(target)
    lost = duplicated = 0
    after = 0
    try:
        while True:
            mine = conn.execute(
                "SELECT id, ts, data FROM readings WHERE id > ? ORDER BY id LIMIT ?", (after, chunk)
            ).fetchall()
            upper = mine[-1][0] if mine else 2**62
            r = stored_readings.c
            async with db.read() as aggregator:
                theirs = (await aggregator.execute(select(r.seq, r.line).where(
                    r.device_id == "bench", r.stream == "readings", r.seq > after, r.seq <= upper).order_by(r.seq))).all()
            stored: dict[int, str] = {}
            for seq, line in theirs:
                item = orjson.loads(line)
                duplicated += seq in stored
                stored[seq] = _digest(item["ts"], item["data"])
            expected = {seq: _digest(ts, orjson.loads(data)) for seq, ts, data in mine}
            lost += sum(1 for seq, digest in expected.items() if stored.get(seq) != digest)
            duplicated += sum(1 for seq in stored if seq not in expected)
            if not mine:
                return lost, duplicated
            after = upper
    finally:
        conn.close()
        await db.close()


def _digest(ts: float, data: dict[str, Any]) -> str:
    """A reading's time and data, whatever the order of its keys (orjson: the stdlib's json
    made the comparison take longer than both drains)."""
    return hashlib.sha256(f"{ts!r}|".encode() + orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _drain_on_postgres(device_db: Path, batch_size: int, work: Path) -> dict[str, Any] | None:
    """:func:`drain` again, from the start, into a fresh PostgreSQL database (None: no server)."""
    async with pg_database("nattery_bench") as url:
        if url is None:
            return None
        conn = sqlite3.connect(device_db)
        conn.execute("DELETE FROM sync_cursors")
        conn.commit()
        conn.close()
        return await asyncio.to_thread(drain, device_db, url, batch_size, work)


TARGET_ROWS_PER_S = 30_000
TARGET_DEVICE_RSS_MB = 150


def _met(run: dict[str, Any]) -> bool:
    """One backend's drain met the targets: nothing lost or doubled, fast enough, small enough."""
    return (run["lost"] == run["duplicated"] == 0 and run["drain_rows_per_s"] >= TARGET_ROWS_PER_S
            and run["device_peak_rss_mb"] <= TARGET_DEVICE_RSS_MB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nattery-bench-") as tmp:
        work = Path(tmp)
        device_db = work / "device.db"
        ingest_rate = fill(device_db, args.readings)
        print(f"device store: {args.readings} readings written at {ingest_rate:,.0f} rows/s "
              f"({device_db.stat().st_size / 1e6:.0f} MB)")
        result: dict[str, Any] = {"readings": args.readings, "ingest_rows_per_s": round(ingest_rate)}
        sqlite_run = drain(device_db, str(work / "cloud.db"), args.batch_size, work)
        result.update(sqlite_run, drain_rows_per_s=round(args.readings / sqlite_run["drain_s"]))
        print(f"SQLite aggregator: drained in {sqlite_run['drain_s']} s "
              f"({result['drain_rows_per_s']:,} readings/s), device peak RSS "
              f"{sqlite_run['device_peak_rss_mb']} MB, aggregator {sqlite_run['aggregator_peak_rss_mb']} MB, "
              f"lost {sqlite_run['lost']}, duplicated {sqlite_run['duplicated']}")
        pg = None if args.no_postgres else asyncio.run(_drain_on_postgres(device_db, args.batch_size, work))
        if pg:
            pg["drain_rows_per_s"] = round(args.readings / pg["drain_s"])
            result["postgresql"] = pg
            print(f"PostgreSQL aggregator: drained in {pg['drain_s']} s ({pg['drain_rows_per_s']:,} readings/s), "
                  f"device peak RSS {pg['device_peak_rss_mb']} MB, aggregator {pg['aggregator_peak_rss_mb']} MB, "
                  f"lost {pg['lost']}, duplicated {pg['duplicated']}")
        result["target_drain_rows_per_s"] = TARGET_ROWS_PER_S
        result["ok"] = all(_met(run) for run in (result, pg) if run)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
