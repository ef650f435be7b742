"""Benchmark: a fleet of devices uploading to two aggregator instances behind one PostgreSQL.

    python -m tools.bench.fleet [--devices N] [--minutes M] [--connections C]

Creates a fresh PostgreSQL database (``$BENCH_POSTGRES_URL``'s server, default
postgresql://postgres@127.0.0.1:5432), registers ``N`` devices, starts two ``nattery-cloud
serve`` instances on it and plays ``M`` minutes of the fleet's life as fast as the aggregator
takes them. Each simulated device is a few lines of state, not an appliance: every minute of
simulated time it uploads that minute's readings (12 full snapshots of the Deye map, 5 s
apart) as one gzip'd batch made by the real encoder (:mod:`common.sync_protocol`), naming the
batch before it as ``prev_seq``; in the minute its quarter-hour ends (devices are spread over
the quarter-hour) it uploads that energy slot too, as the device's sync round does. Requests
go to the two instances in turn, as a load balancer would send them; ``C`` uploads are in
flight at once, and a device's next upload waits for the acknowledgement of its last one. A
refused or failed upload (5xx, 429, a lost connection) is retried like a device retries.

Afterwards everything the database holds is compared with what was sent, row by row (each
reading line's MD5, each energy document): ``lost`` counts items sent and acknowledged but not
stored as sent, ``duplicated`` rows beyond one per item sent. CPU seconds of the instances, of
their PostgreSQL backends and of this load generator come from ``/proc``; they share the
machine's cores, so the figures say what the whole setup does on it. The database is dropped
afterwards. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from common import sync_protocol as protocol
from tools.bench.aggregator import cpu_s, pg_database, register, serve, stop
from tools.bench.sync import realistic_readings

READING_S = 5
READINGS_PER_UPLOAD = 60 // READING_S
SLOT_MINUTES = 15
SNAPSHOTS = 720  # distinct reading snapshots the devices take their data from
TARGET_UPLOADS_PER_S = 200  # 12,000 devices at one upload a minute
TARGET_P99_MS = 1000


@dataclass
class Device:
    """What one simulated device keeps: its credential and the last sequence numbers sent."""

    number: int
    credential: str
    readings_seq: int = 0
    energy_seq: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return device_name(self.number)


def device_name(number: int) -> str:
    return f"fleet-{number:06d}"


class Fleet:
    """The simulated fleet's data: deterministic per device, sequence number and minute, so
    the check afterwards can rebuild what each device sent without keeping it."""

    def __init__(self, start: float, snapshots: Sequence[str]) -> None:
        self.start = start  # simulated time of the first reading
        self.snapshots = snapshots

    def reading_line(self, number: int, seq: int) -> bytes:
        data = self.snapshots[(number * 131 + seq) % len(self.snapshots)]
        return protocol.reading_line(seq, self.start + (seq - 1) * READING_S, data)

    def slot_due(self, number: int, minute: int) -> bool:
        """Whether the device's quarter-hour ends in this minute (devices spread over it)."""
        return (minute + number) % SLOT_MINUTES == SLOT_MINUTES - 1

    def slot(self, number: int, minute: int) -> tuple[str, str]:
        """The energy slot ending with ``minute``: its key and data JSON, as the outbox has them."""
        ts = self.start + (minute + 1 - SLOT_MINUTES) * 60
        wh = float((number * 7 + minute) % 900)
        data = {"ts": ts, "import_wh": wh, "export_wh": 0.0, "charge_wh": wh / 2, "discharge_wh": 0.0,
                "pv_wh": wh * 1.5, "load_wh": wh, "samples": 180, "covered_s": 900.0, "complete": 1,
                "source": "readings"}
        return repr(ts), json.dumps(data)


@dataclass
class Tally:
    """What the load generator saw."""

    latencies: list[float] = field(default_factory=list)
    acked: list[float] = field(default_factory=list)  # when each upload was acknowledged
    statuses: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    rows: int = 0


async def upload(session: aiohttp.ClientSession, url: str, device: Device, body: bytes, tally: Tally) -> None:
    """POST one batch until it is acknowledged, retrying as a device does."""
    headers = {"Authorization": f"Bearer {device.credential}", "Content-Type": protocol.CONTENT_TYPE}
    began = time.perf_counter()
    for attempt in itertools.count():
        try:
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                if response.status == 200:
                    tally.statuses[answer["status"]] = tally.statuses.get(answer["status"], 0) + 1
                    break
                reason, wait = f"HTTP {response.status}", float(response.headers.get("Retry-After", 0.2))
                if response.status not in (425, 429, 500, 502, 503, 504):
                    raise RuntimeError(f"{device.name}: {url} answered {response.status}: {answer}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason, wait = type(exc).__name__, 0.2
        if attempt >= 20:
            raise RuntimeError(f"{device.name}: {url} still failing after {attempt} retries ({reason})")
        tally.retries[reason] = tally.retries.get(reason, 0) + 1
        await asyncio.sleep(min(wait, 5.0))
    now = time.perf_counter()
    tally.latencies.append(now - began)
    tally.acked.append(now)


async def play(fleet: Fleet, devices: list[Device], minutes: int, urls: list[str], connections: int) -> Tally:
    """Every device's uploads for ``minutes`` minutes, minute by minute, ``connections`` at once."""
    tally = Tally()
    jobs = ((minute, device) for minute in range(minutes) for device in devices)
    instances = itertools.cycle(urls)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), timeout=timeout) as session:

        async def worker() -> None:
            for minute, device in jobs:
                async with device.lock:  # taken in job order, so a device's uploads stay in order
                    seqs = range(device.readings_seq + 1, device.readings_seq + READINGS_PER_UPLOAD + 1)
                    body, _, last = protocol.encode(
                        device.name, "readings", [fleet.reading_line(device.number, s) for s in seqs],
                        backlog=0, prev_seq=device.readings_seq)
                    await upload(session, f"{next(instances)}/v1/ingest/readings", device, body, tally)
                    device.readings_seq = last
                    tally.rows += len(seqs)
                    if fleet.slot_due(device.number, minute):
                        key, data = fleet.slot(device.number, minute)
                        seq = device.energy_seq + 1
                        body, _, _ = protocol.encode(device.name, "energy", [protocol.document_line(seq, key, data)],
                                                     backlog=0, prev_seq=device.energy_seq)
                        await upload(session, f"{next(instances)}/v1/ingest/energy", device, body, tally)
                        device.energy_seq = seq
                        tally.rows += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return tally


async def check(url: str, fleet: Fleet, devices: list[Device], minutes: int, chunk: int = 500) -> tuple[int, int]:
    """``(lost, duplicated)`` between what was sent and what the database holds, row by row."""
    import asyncpg

    conn = await asyncpg.connect(url)
    lost = duplicated = 0
    try:
        for i in range(0, len(devices), chunk):
            group = devices[i:i + chunk]
            names = [d.name for d in group]
            stored: dict[tuple[str, int], list[str]] = {}
            for name, seq, digest in await conn.fetch(
                "SELECT device_id, seq, md5(line) FROM readings WHERE stream = 'readings' AND device_id = ANY($1)",
                names,
            ):
                stored.setdefault((name, seq), []).append(digest)
            documents: dict[tuple[str, str], list[tuple[int, str]]] = {}
            for name, key, seq, data in await conn.fetch(
                "SELECT device_id, key, seq, data FROM documents WHERE stream = 'energy' AND device_id = ANY($1)",
                names,
            ):
                documents.setdefault((name, key), []).append((seq, data))
            for device in group:
                for seq in range(1, device.readings_seq + 1):
                    got = stored.pop((device.name, seq), [])
                    want = hashlib.md5(fleet.reading_line(device.number, seq)).hexdigest()
                    lost += want not in got
                    duplicated += max(len(got) - 1, 0)
                seq = 0
                for minute in range(minutes):
                    if fleet.slot_due(device.number, minute):
                        seq += 1
                        key, data = fleet.slot(device.number, minute)
                        got_docs = documents.pop((device.name, key), [])
                        lost += not any(s == seq and json.loads(d) == json.loads(data) for s, d in got_docs)
                        duplicated += max(len(got_docs) - 1, 0)
            duplicated += sum(len(rows) for rows in stored.values()) + sum(len(d) for d in documents.values())
    finally:
        await conn.close()
    return lost, duplicated


async def backend_pids(url: str) -> list[int]:
    """The PostgreSQL server processes serving this database's connections."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                " AND pid <> pg_backend_pid()")
    finally:
        await conn.close()
    return [row[0] for row in rows]


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1] if len(values) > 1 else values[0]


def slowest_window(acked: list[float], window_s: float = 10.0) -> float | None:
    """Uploads per second in the slowest whole ``window_s`` of the run (None: shorter run)."""
    if not acked:
        return None
    first = min(acked) - 1e-9
    counts: dict[int, int] = {}
    for t in acked:
        counts[int((t - first) // window_s)] = counts.get(int((t - first) // window_s), 0) + 1
    whole = [counts.get(i, 0) for i in range(max(counts))]  # the last window is partial
    return min(whole) / window_s if whole else None


async def run(devices_n: int, minutes: int, connections: int, work: Path) -> dict[str, Any]:
    async with pg_database("nattery_fleet") as url:
        if url is None:
            raise SystemExit("the fleet benchmark needs PostgreSQL")
        began = time.perf_counter()
        names = [device_name(n) for n in range(devices_n)]
        credentials = await register(url, names)
        print(f"{devices_n} devices registered in {time.perf_counter() - began:.1f} s")
        devices = [Device(n, credential) for n, credential in enumerate(credentials)]
        snapshots = [json.dumps({"roles": r.roles, "registers": r.registers}, separators=(",", ":"))
                     for r in realistic_readings(0, SNAPSHOTS, READING_S)]
        fleet = Fleet(time.time() - (minutes + SLOT_MINUTES) * 60, snapshots)
        instances = [await asyncio.to_thread(serve, url, work / f"aggregator{i}.log") for i in range(2)]
        try:
            pids = [proc.pid for proc, _ in instances]
            before_backends = {pid: cpu_s(pid) for pid in await backend_pids(url)}
            before = sum(cpu_s(pid) for pid in pids)
            generator_before = time.process_time()
            began = time.perf_counter()
            tally = await play(fleet, devices, minutes, [f"http://127.0.0.1:{port}" for _, port in instances],
                               connections)
            seconds = time.perf_counter() - began
            generator_cpu = time.process_time() - generator_before
            aggregator_cpu = sum(cpu_s(pid) for pid in pids) - before
            backends = await backend_pids(url)
            database_cpu = sum(cpu_s(pid) - before_backends.get(pid, 0.0) for pid in backends)
            alive = all(proc.poll() is None for proc, _ in instances)
        finally:
            for proc, _ in instances:
                stop(proc)
        lost, duplicated = await check(url, fleet, devices, minutes)
    uploads = len(tally.latencies)
    per_1000 = 1000 / uploads
    return {
        "devices": devices_n, "minutes": minutes, "connections": connections, "uploads": uploads,
        "seconds": round(seconds, 1), "uploads_per_s": round(uploads / seconds, 1),
        "slowest_10s_uploads_per_s": slowest_window(tally.acked),
        "rows_per_s": round(tally.rows / seconds), "upload_ms_p50": round(statistics.median(tally.latencies) * 1000, 1),
        "upload_ms_p99": round(percentile(tally.latencies, 0.99) * 1000, 1), "lost": lost, "duplicated": duplicated,
        "statuses": tally.statuses, "retries": tally.retries, "instances_alive": alive,
        "aggregator_cpu_s_per_1000_uploads": round(aggregator_cpu * per_1000, 2),
        "database_cpu_s_per_1000_uploads": round(database_cpu * per_1000, 2),
        "generator_cpu_s_per_1000_uploads": round(generator_cpu * per_1000, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=12_000)
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32, help="uploads in flight at once")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nattery-bench-") as tmp:
        result = asyncio.run(run(args.devices, args.minutes, args.connections, Path(tmp)))
    result["ok"] = (result["uploads_per_s"] >= TARGET_UPLOADS_PER_S and result["upload_ms_p99"] <= TARGET_P99_MS
                    and result["lost"] == result["duplicated"] == 0)
    print(f"{result['devices']} devices x {result['minutes']} min: {result['uploads']} uploads in "
          f"{result['seconds']} s = {result['uploads_per_s']}/s (slowest 10 s: {result['slowest_10s_uploads_per_s']}/s; "
          f"target >= {TARGET_UPLOADS_PER_S}), {result['rows_per_s']} rows/s; upload p50 {result['upload_ms_p50']} ms, "
          f"p99 {result['upload_ms_p99']} ms (<= {TARGET_P99_MS}); lost {result['lost']}, duplicated "
          f"{result['duplicated']}; CPU s per 1000 uploads: aggregators {result['aggregator_cpu_s_per_1000_uploads']}, "
          f"PostgreSQL backends {result['database_cpu_s_per_1000_uploads']}, load generator "
          f"{result['generator_cpu_s_per_1000_uploads']}; load average {result['load_average_1min']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
