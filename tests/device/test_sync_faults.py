"""kill -9 of the aggregator at several points of an ingest while several devices upload at
once; after a restart every device's store and the aggregator agree row for row (readings and
energy slots): nothing lost, nothing doubled.

One burst meets every point in turn (:func:`~tests.device.test_sync.kill_in_turn`), so the
later kills land while the devices retry together after the outage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from device.store import AsyncStore, Store
from device.sync import SyncClient
from tests.cloud_sync.aggregator import Aggregator, cloud_target  # noqa: F401 (pg_url: conftest.py)
from tests.device.test_sync import assert_exact_match, device_config, fill, kill_in_turn

DEVICES = 3
CRASHES = ("decoded:4", "items_written:4", "before_commit:4", "after_commit:4")
BATCH = 250
#: Readings per device: 8 batches each, 24 in all, about twice what the four kills take.
READINGS = 8 * BATCH


async def test_aggregator_killed_at_every_point_of_an_upload_burst(cloud_target: str, tmp_path: Path) -> None:
    agg = Aggregator(cloud_target, tmp_path / "crashing.log")
    names = [f"burst-{n}" for n in range(DEVICES)]
    credentials = {name: agg.add_device(name) for name in names}
    for name in names:
        fill(tmp_path / f"{name}.db", READINGS, start=time.time() - READINGS * 5)
    agg.start(crash=CRASHES[0])
    stores = [await AsyncStore(tmp_path / f"{name}.db").open() for name in names]
    try:
        clients = [SyncClient(device_config(tmp_path, name, agg, credentials[name], batch_size=BATCH), store)
                   for name, store in zip(names, stores, strict=True)]
        drains = [asyncio.create_task(client.drain()) for client in clients]
        try:
            await kill_in_turn(agg, CRASHES, drains)
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
