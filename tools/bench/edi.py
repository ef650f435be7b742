"""Benchmark: N days of one household's quarter-hours through the real MSCONS export and the
real EDI gateway.

    python -m tools.bench.edi --household ../shared/data/household/de_household_15min_2024.csv \\
        --days 366 [--pv-kwp 5] [--db postgresql://postgres@127.0.0.1:5432/DB] [--out DIR]

The household's load less its PV (``--pv-kwp`` times the per-kWp profile) gives the grid
import and export of each quarter-hour; they are stored as the device's energy slots in a
fresh device store, and each local day is exported by ``device.edi.export_day`` (timed:
``export_ms``) and posted with the device's credential to ``POST /v1/edi`` of a
``nattery-cloud serve`` started on 127.0.0.1 (timed per request: ``gateway_ms``), SQLite in a
temporary directory unless ``--db`` names another database (a fresh one: the run registers its
own partner IDs and metering location, so runs do not collide). Afterwards every exported
quarter-hour is compared with what the gateway stored (``edi_values``, integer Wh):
``roundtrip_mismatches`` counts the differing or missing ones. ``--out DIR`` keeps the files.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pandas as pd
from sqlalchemy import select

from cloud_sync import registry
from cloud_sync.db import connect
from cloud_sync.schema.edi import edi_values
from common import logs, market_ids, mscons
from device.accounting import day_bounds
from device.config import MarketSettings
from device.edi import SETTLE_S, export_day
from device.ports import free_port, wait_for_port
from device.store import Store

TZ = "Europe/Berlin"


def _partner(rng: random.Random, qualifier: str) -> str:
    first = {"293": "99", "332": "98"}[qualifier] + "".join(str(rng.randint(0, 9)) for _ in range(10))
    return first + str(market_ids.partner_check_digit(first, qualifier))


def market(seed: int) -> MarketSettings:
    """Identities of this run's own (valid check digits), so runs on one database do not collide."""
    rng = random.Random(seed)
    malo_first = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(9))
    return MarketSettings(
        malo_id=malo_first + str(market_ids.bdew_check_digit(malo_first)),
        melo_id="DE000123456789" + "".join(rng.choice("0123456789ABCDEF") for _ in range(19)),
        sender_id=_partner(rng, "293"), receiver_id=_partner(rng, "332"), receiver_qualifier="332",
    )


def household_slots(csv: Path, pv_kwp: float) -> list[dict[str, Any]]:
    """The household's quarter-hours as device energy slots (grid import/export in Wh)."""
    frame = pd.read_csv(csv, usecols=["timestamp_utc", "load_kw", "pv_kw_per_kwp"])
    if frame.empty:
        raise SystemExit(f"--household {csv}: no rows")
    ts = (pd.to_datetime(frame["timestamp_utc"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    net_wh = (frame["load_kw"] - frame["pv_kw_per_kwp"] * pv_kwp) * 250.0  # kW over 15 min → Wh
    return [{"ts": int(t), "import_wh": max(w, 0.0), "export_wh": max(-w, 0.0), "charge_wh": 0.0, "discharge_wh": 0.0,
             "pv_wh": float(p) * pv_kwp * 250.0, "load_wh": float(lo) * 250.0, "samples": 180, "covered_s": 900.0,
             "complete": 1, "source": "power", "updated_at": 0.0}
            for t, w, p, lo in zip(ts, net_wh, frame["pv_kw_per_kwp"], frame["load_kw"], strict=True)]


def local_days(slots: list[dict[str, Any]], count: int) -> list[date]:
    """The first ``count`` local days the household covers whole."""
    have = {s["ts"] for s in slots}
    first = datetime.fromtimestamp(min(have), ZoneInfo(TZ)).date()
    days: list[date] = []
    day = first
    while len(days) < count and day <= datetime.fromtimestamp(max(have), ZoneInfo(TZ)).date():
        start, end = day_bounds(day, TZ)
        if all(ts in have for ts in range(start, end, 900)):
            days.append(day)
        day += timedelta(days=1)
    if len(days) < count:
        raise SystemExit(f"--days {count}: the household covers only {len(days)} whole local days")
    return days


class Server:
    """``nattery-cloud serve`` on 127.0.0.1 for the run."""

    def __init__(self, target: str) -> None:
        self.target, self.port = target, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cloud_sync", "--log-level", "warning", "serve", "--db", self.target,
             "--port", str(self.port), "--auth-failures", "10000"], stdout=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=60)
        return self

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def _register(target: str, device: str, operator: str) -> tuple[str, str]:
    db = await connect(target)
    try:
        return await registry.add(db, "dev", device), await registry.add(db, "op", operator)
    finally:
        await db.close()


async def _stored(target: str, melo: str) -> dict[tuple[str, int], int]:
    db = await connect(target)
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(edi_values.c.obis, edi_values.c.slot_start, edi_values.c.wh).where(
                edi_values.c.melo_id == melo, edi_values.c.source == "device"))).all()
    finally:
        await db.close()
    return {(str(o), int(t)): int(w) for o, t, w in rows}


def _percentile(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2) if len(values) > 1 else round(values[0], 2)


async def run(household: Path, days: int, pv_kwp: float, target: str | None, out: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-edi-") as tmp:
        target = target or str(Path(tmp) / "cloud.db")
        seed = int(time.time())
        ids = market(seed)
        device, operator = f"bench-edi-{seed}", f"bench-op-{seed}"
        store = Store(Path(tmp) / "device.db")
        slots = household_slots(household, pv_kwp)
        store.db.table("energy_slots").insert_all(slots, batch_size=5000)
        chosen = local_days(slots, days)
        dev, op = await _register(target, device, operator)
        export_ms: list[float] = []
        gateway_ms: list[float] = []
        exported: dict[tuple[str, int], int] = {}
        accepted = rejected = 0
        with Server(target) as server:
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {op}"}) as ops:
                for party, qualifier in ((ids.sender_id, ids.sender_qualifier), (ids.receiver_id, ids.receiver_qualifier)):
                    async with ops.put(f"{server.url}/v1/edi/partners/{party}", json={"qualifier": qualifier}) as r:
                        r.raise_for_status()
                async with ops.put(f"{server.url}/v1/edi/locations/{ids.melo_id}",
                                   json={"malo_id": ids.malo_id, "device_id": device}) as r:
                    r.raise_for_status()
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {dev}"}) as session:
                for day in chosen:
                    began = time.perf_counter()
                    made = export_day(store, ids, day, TZ, day_bounds(day, TZ)[1] + SETTLE_S + 60)
                    export_ms.append((time.perf_counter() - began) * 1000)
                    assert made is not None, day
                    for obis, kwh_values in _values(made.content):
                        exported.update({(obis, start): wh for start, wh in kwh_values})
                    if out is not None:
                        _keep(out, made.name, made.content)
                    began = time.perf_counter()
                    async with session.post(f"{server.url}/v1/edi", params={"name": made.name},
                                            data=made.content.encode("latin-1")) as r:
                        answer = await r.json()
                    gateway_ms.append((time.perf_counter() - began) * 1000)
                    if r.status == 200 and answer["accepted"]:
                        accepted += 1
                    else:
                        rejected += 1
                        print(f"{day}: HTTP {r.status}: {answer.get('errors') or answer.get('error')}", file=sys.stderr)
        store.close()
        stored = await _stored(target, ids.melo_id)
        mismatches = sum(stored.get(key) != wh for key, wh in exported.items()) + len(set(stored) - set(exported))
        return {
            "files": len(chosen), "slots": len(exported), "export_ms_p50": _percentile(export_ms, 50),
            "export_ms_p99": _percentile(export_ms, 99), "gateway_ms_p50": _percentile(gateway_ms, 50),
            "gateway_ms_p99": _percentile(gateway_ms, 99), "accepted": accepted, "rejected": rejected,
            "roundtrip_mismatches": mismatches, "database": "postgresql" if target.startswith("postgres") else "sqlite",
            "days": f"{chosen[0]}..{chosen[-1]}",
        }


def _keep(out: Path, name: str, content: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(content, encoding="latin-1")


def _values(content: str) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    for series in mscons.parse(content).messages[0].series:
        yield series.obis, [(v.start, int(v.kwh * 1000)) for v in series.values]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--household", type=Path, required=True, help="CSV: timestamp_utc, load_kw, pv_kw_per_kwp")
    parser.add_argument("--days", type=int, default=366, help="local days to export and post (default 366)")
    parser.add_argument("--pv-kwp", type=float, default=5.0, help="PV size in kWp (default 5)")
    parser.add_argument("--db", default=None, help="aggregator database (default: SQLite in a temporary directory)")
    parser.add_argument("--out", type=Path, default=None, help="keep the exported files in this directory")
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error(f"--days: got {args.days}, allowed: 1 or more")
    logs.configure("warning", "console")
    result = asyncio.run(run(args.household, args.days, args.pv_kwp, args.db, args.out))
    print(f"{result['files']} daily files ({result['days']}, {result['slots']} quarter-hour values) through the "
          f"export and the gateway on {result['database']}: export p50 {result['export_ms_p50']} ms, "
          f"gateway p50 {result['gateway_ms_p50']} ms (p99 {result['gateway_ms_p99']} ms); "
          f"{result['accepted']} accepted, {result['rejected']} rejected, "
          f"{result['roundtrip_mismatches']} round-trip mismatches")
    print(json.dumps(result))


if __name__ == "__main__":
    main()

