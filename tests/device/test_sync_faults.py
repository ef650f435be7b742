"""kill -9 of the aggregator at several points of an ingest while several devices upload at
once; after a restart every device's store and the aggregator agree row for row (readings and
energy slots): nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from device.store import AsyncStore, Store
from device.sync import SyncClient
from tests.cloud_sync.aggregator import Aggregator, cloud_target, pg_url  # noqa: F401
from tests.device.test_sync import assert_exact_match, device_config, fill, until

DEVICES = 3


@pytest.mark.parametrize("crash", ["decoded:4", "items_written:7", "before_commit:10", "after_commit:13"])
async def test_aggregator_killed_during_an_upload_burst(cloud_target: str, tmp_path: Path, crash: str) -> None:
    point = crash.split(":")[0].replace("_", "-")
    agg = Aggregator(cloud_target, tmp_path / "crashing.log")
    names = [f"burst-{point}-{n}" for n in range(DEVICES)]
    credentials = {name: agg.add_device(name) for name in names}
    for name in names:
        fill(tmp_path / f"{name}.db", 4000, start=time.time() - 4000 * 5)
    agg.start(crash=crash)
    stores = [await AsyncStore(tmp_path / f"{name}.db").open() for name in names]
    try:
        clients = [SyncClient(device_config(tmp_path, name, agg, credentials[name], batch_size=500), store)
                   for name, store in zip(names, stores, strict=True)]
        drains = [asyncio.create_task(client.drain()) for client in clients]
        try:
            await until(agg.killed, "the aggregator to die at its crash point")
            assert not all(task.done() for task in drains)
            agg.start()  # no crash point this time
            await asyncio.wait_for(asyncio.gather(*drains), 180)
        finally:
            for task in drains:
                task.cancel()
            agg.stop()
        for name, store in zip(names, stores, strict=True):
            assert_exact_match(tmp_path / f"{name}.db", agg, name)
            slots = await store.call(Store.energy_slots, 0, 2e9)
            assert slots, "the sync derives energy slots from the readings"
            stored = agg.documents(name, "energy")
            assert {int(k): v for k, v in stored.items()} == {s["ts"]: {k: v for k, v in s.items() if k != "updated_at"}
                                                              for s in slots}
    finally:
        for store in stores:
            await store.close()
