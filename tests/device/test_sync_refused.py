"""A value the aggregator refuses (an inverter glitch stored on the device, a clock that was
wrong) must not stop the upload for good: the batch goes again without it, the rest arrives
exactly, and the device's events say what was left out."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from device.store import AsyncStore
from device.sync import SyncClient, SyncError
from tests.cloud_sync.aggregator import Aggregator, sqlite_aggregator  # noqa: F401
from tests.device.test_sync import device_config, fill


async def test_an_impossible_value_is_left_out_and_the_upload_goes_on(
    sqlite_aggregator: Aggregator, tmp_path: Path
) -> None:
    credential = sqlite_aggregator.add_device("glitch")
    db_path = tmp_path / "glitch.db"
    fill(db_path, 3000, start=time.time() - 3000 * 5)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE readings SET data = json_set(data, '$.roles.soc_pct', 255) WHERE id = 1500")
    conn.execute("UPDATE readings SET ts = ts + 3650 * 86400 WHERE id = 2500")  # a clock ten years ahead
    conn.commit()
    mine = {s: (ts, json.loads(d)) for s, ts, d in conn.execute("SELECT id, ts, data FROM readings")}
    conn.close()
    async with AsyncStore(db_path) as store:
        client = SyncClient(device_config(tmp_path, "glitch", sqlite_aggregator, credential, batch_size=1000), store)
        await client.drain(max_failures=5)
    theirs = {i["seq"]: (i["ts"], i["data"]) for i in (json.loads(line) for _, line in sqlite_aggregator.rows("glitch"))}
    assert sorted(theirs) == [s for s in range(1, 3001) if s != 2500]
    assert "soc_pct" not in theirs[1500][1]["roles"]
    del mine[1500][1]["roles"]["soc_pct"]
    assert all(theirs[s] == mine[s] for s in theirs)
    conn = sqlite3.connect(db_path)
    events = [json.loads(d) for d, in conn.execute("SELECT data FROM events WHERE kind = 'cloud_sync' ORDER BY id")]
    conn.close()
    assert events == [{"values_left_out": ["1500:data.roles.soc_pct"], "items_left_out": []},
                      {"values_left_out": ["2500:ts"], "items_left_out": [2500]}]


async def test_the_device_waits_as_long_as_the_aggregator_asks(tmp_path: Path) -> None:
    agg = Aggregator(str(tmp_path / "cloud.db"), tmp_path / "agg.log",
                     options=("--auth-failures", "1", "--auth-window-s", "600"))
    credential = agg.add_device("patient")
    fill(tmp_path / "patient.db", 10)
    agg.start()
    try:
        async with aiohttp.ClientSession() as session, session.get(  # someone guessing from the same address
            f"{agg.url}/v1/streams/readings", headers={"Authorization": "Bearer dev.x.y"}
        ) as r:
            assert r.status == 401
        async with AsyncStore(tmp_path / "patient.db") as store:
            client = SyncClient(device_config(tmp_path, "patient", agg, credential, backoff_max_s=30.0), store)
            with pytest.raises(SyncError, match="HTTP 429: too many failed credentials"):
                await client.drain(max_failures=1)
    finally:
        agg.stop()
    assert client.stats["next_retry_s"] == 30.0  # Retry-After (about 600 s) up to backoff_max_s, not 0.05 s
