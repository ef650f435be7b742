"""A replaced SD card is a new store under the same device id: its readings start at sequence 1
again. Each store uploads into a stream of its own, so nothing of either is skipped or doubled,
whichever card runs, and whatever position the old store's stream reached."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from sqlalchemy import insert

from cloud_sync.schema import sync as schema
from device.store import AsyncStore, Store
from device.sync import SyncClient
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target  # noqa: F401 (pg_url: conftest.py)
from tests.device.test_sync import device_config, fill


def local_readings(db_path: Path) -> list[tuple[int, float, dict[str, object]]]:
    conn = sqlite3.connect(db_path)
    try:
        return [(s, ts, json.loads(d)) for s, ts, d in conn.execute("SELECT id, ts, data FROM readings ORDER BY id")]
    finally:
        conn.close()


def stored_readings(agg: Aggregator, device: str, store: str) -> list[tuple[int, float, dict[str, object]]]:
    items = [json.loads(line) for _, line in agg.rows(device, store=store)]
    return [(i["seq"], i["ts"], i["data"]) for i in items]


async def drain(agg: Aggregator, card: Path, device: str, credential: str, max_failures: int | None = None) -> str:
    """Sync one card's store until nothing is pending; returns the store's identity."""
    card.mkdir(exist_ok=True)
    async with AsyncStore(card / f"{device}.db") as store:
        await SyncClient(device_config(card, device, agg, credential), store).drain(max_failures)
        return await store.call(Store.store_id)


async def test_a_replaced_card_uploads_its_own_readings_and_keeps_the_old_ones(
    aggregator: Aggregator, tmp_path: Path
) -> None:
    device = f"sdcard-{int(time.time() * 1000) % 10**8}"
    credential = aggregator.add_device(device)
    old, new = tmp_path / "old-card", tmp_path / "new-card"
    old.mkdir()
    new.mkdir()
    fill(old / f"{device}.db", 1000, start=time.time() - 3 * 3600)
    old_store = await drain(aggregator, old, device, credential)
    fill(new / f"{device}.db", 300, start=time.time() - 3600)  # the new card numbers from 1 again
    new_store = await drain(aggregator, new, device, credential)
    assert old_store != new_store
    assert stored_readings(aggregator, device, old_store) == local_readings(old / f"{device}.db")
    assert stored_readings(aggregator, device, new_store) == local_readings(new / f"{device}.db")

    # The old card goes back in: it carries on where its own stream stood.
    fill(old / f"{device}.db", 50, start=time.time() - 600)
    await drain(aggregator, old, device, credential)
    assert len(aggregator.rows(device)) == 1350
    assert stored_readings(aggregator, device, old_store) == local_readings(old / f"{device}.db")
    assert stored_readings(aggregator, device, new_store) == local_readings(new / f"{device}.db")


async def test_an_old_stream_near_the_end_of_the_sequence_range_does_not_wedge_a_new_card(
    aggregator: Aggregator, tmp_path: Path
) -> None:
    device = f"wedge-{int(time.time() * 1000) % 10**8}"
    credential = aggregator.add_device(device)
    # What a release before store identities may have left: a stream at 2^63 - 10.
    top = 2**63 - 10
    aggregator.execute(insert(schema.streams).values(
        device_id=device, stream="readings", store_id="", last_seq=top, backlog=0, updated_at=time.time()))
    line = json.dumps({"seq": top, "ts": time.time() - 7200, "data": {"roles": {}, "registers": {}}})
    aggregator.execute(insert(schema.readings).values(
        device_id=device, stream="readings", store_id="", seq=top, ts=time.time() - 7200, line=line))
    card = tmp_path / "card"
    card.mkdir()
    fill(card / f"{device}.db", 400, start=time.time() - 3600)
    store = await drain(aggregator, card, device, credential, max_failures=3)
    assert stored_readings(aggregator, device, store) == local_readings(card / f"{device}.db")
    assert aggregator.rows(device, store="") == [(top, line)]
