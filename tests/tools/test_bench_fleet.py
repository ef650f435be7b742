"""The fleet benchmark's check: what two real aggregator instances stored, compared with what the
simulated devices sent, finds every lost, altered and duplicated item (real PostgreSQL)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import asyncpg

from tests.cloud_sync.aggregator import pg_url  # noqa: F401 — fixture
from tools.bench.aggregator import register, serve, stop
from tools.bench.fleet import SLOT_MINUTES, Device, Fleet, check, device_name, play

MINUTES = SLOT_MINUTES + 1  # every device's quarter-hour ends once


async def test_the_check_counts_what_the_database_lost_altered_or_holds_twice(
        pg_url: str, tmp_path: Path) -> None:
    names = [device_name(n) for n in range(3)]
    devices = [Device(n, credential) for n, credential in enumerate(await register(pg_url, names))]
    snapshots = [json.dumps({"roles": {"soc_pct": n}, "registers": {"r": n}}) for n in range(5)]
    fleet = Fleet(time.time() - (MINUTES + SLOT_MINUTES) * 60, snapshots)
    instances = [serve(pg_url, tmp_path / f"aggregator{i}.log") for i in range(2)]
    try:
        tally = await play(fleet, devices, MINUTES, [f"http://127.0.0.1:{port}" for _, port in instances], 2)
    finally:
        for proc, _ in instances:
            stop(proc)
    assert tally.statuses == {"stored": 3 * MINUTES + 3} and tally.rows == 3 * MINUTES * 12 + 3
    assert [d.readings_seq for d in devices] == [MINUTES * 12] * 3 and [d.energy_seq for d in devices] == [1] * 3
    assert await check(pg_url, fleet, devices, MINUTES) == (0, 0)

    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("DELETE FROM readings WHERE device_id = $1 AND seq = 5", names[0])
        await conn.execute("UPDATE readings SET line = replace(line, '\"soc_pct\"', '\"soc\"')"
                           " WHERE device_id = $1 AND seq = 7", names[1])
        await conn.execute("INSERT INTO readings (device_id, stream, store_id, seq, ts, line)"
                           " SELECT device_id, stream, 'other-store', seq, ts, line FROM readings"
                           " WHERE device_id = $1 AND seq = 9", names[2])
        await conn.execute("UPDATE documents SET data = '{}' WHERE device_id = $1", names[2])
    finally:
        await conn.close()
    assert await check(pg_url, fleet, devices, MINUTES) == (3, 1)
