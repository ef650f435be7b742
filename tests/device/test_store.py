"""The device store on real SQLite files: migrations, readings, energy slots, events, the sync
outbox, retention, and a full disk (a size-limited database and a small ext4 image)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from device import store as store_module
from device.store import AsyncStore, Reading, Retention, Store, StoreError, StoreFull

DAY = 86_400.0
T0 = 1_795_000_500.0  # a quarter-hour boundary


def reading(ts: float, **roles: float) -> Reading:
    base = {"soc_pct": 50.0, "battery_w": -500.0, "pv_w": 2000.0, "grid_w": 1000.0, "load_w": 500.0, "state": 2}
    return Reading(ts, {**base, **roles}, {"battery_voltage": 52.1, "grid_voltage": 231.0})


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "nattery.db")
    yield s
    s.close()


def test_migrations_create_every_table_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "nattery.db"
    first = Store(path)
    assert first.version == len(store_module.MIGRATIONS)
    tables = set(first.db.table_names())
    assert {"readings", "energy_slots", "prices", "forecasts", "plans", "settlements", "settlement_days",
            "events", "edi_files", "outbox", "sync_cursors"} <= tables
    assert first.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    first.db.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'future', 'x')")
    first.close()
    with pytest.raises(StoreError, match="schema version 999 is newer than this release supports"):
        Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM schema_version WHERE version = 999").fetchone()[0] == 1
    conn.close()


def test_readings_round_trip_and_ids_are_never_reused(db: Store) -> None:
    assert db.insert_readings([reading(T0 + i) for i in range(3)]) == 3
    assert db.latest_reading() == {
        "ts": T0 + 2, "roles": {**reading(0).roles}, "registers": {"battery_voltage": 52.1, "grid_voltage": 231.0}
    }
    db.prune(T0 + 100 * DAY)  # everything is older than the retention: the table is emptied
    assert db.count_readings() == 0
    assert db.events(kind="sync_data_pruned") == []  # this device does not sync: nothing to warn about
    db.insert_readings([reading(T0 + 100 * DAY)])
    assert db.readings_after(0, 10)[0][0] == 4  # the sync sequence goes on, never back to 1


def test_nan_is_stored_as_null(db: Store) -> None:
    db.insert_readings([reading(T0, grid_w=float("nan"))])
    (_, _, data), = db.readings_after(0, 1)
    assert json.loads(data)["roles"]["grid_w"] is None


def test_energy_slots_are_derived_once_each_slot_is_over(db: Store) -> None:
    db.insert_readings([reading(T0 + 5 * i) for i in range(2 * 180)])  # T0 .. T0 + 1795
    assert db.update_energy_slots(now=T0 + 900) == 0  # the first slot is not settled yet
    assert db.update_energy_slots(now=T0 + 900 + 200) == 1
    (slot,) = db.energy_slots(T0, T0 + 3600)
    assert (slot["ts"], slot["import_wh"], slot["charge_wh"], slot["complete"]) == (T0, 250.0, 125.0, 1)
    assert db.update_energy_slots(now=T0 + 900 + 200) == 0
    assert db.update_energy_slots(now=T0 + 4 * 3600) == 1  # the second, ending in a gap
    assert db.energy_slots(T0 + 900, T0 + 1800)[0]["complete"] == 0
    queued = db.outbox_after("energy", 0, 10)
    assert [key for _, key, _ in queued] == [str(int(T0)), str(int(T0 + 900))]
    assert json.loads(queued[0][2])["import_wh"] == 250.0


def test_documents_are_queued_for_sync_by_trigger(db: Store) -> None:
    db.db.execute("INSERT INTO settlements (ts, import_wh, export_wh, cost_eur, computed_at) VALUES (900, 1, 0, 0.3, 1)")
    db.db.execute("UPDATE settlements SET cost_eur = 0.4 WHERE ts = 900")
    db.db.execute("INSERT INTO edi_files (name, created_at, period_start, period_end, content) "
                  "VALUES ('MSCONS_1.edi', 1, 0, 900, 'UNB+UNOC:3')")
    settlements = db.outbox_after("settlements", 0, 10)
    assert [(key, json.loads(data)["cost_eur"]) for _, key, data in settlements] == [("900", 0.3), ("900", 0.4)]
    assert json.loads(db.outbox_after("edi", 0, 10)[0][2])["content"] == "UNB+UNOC:3"
    assert db.pending("settlements", settlements[0][0]) == (1, pytest.approx(time.time(), abs=60))


def test_cleared_prices_and_price_forecasts_are_queued_for_sync(db: Store) -> None:
    """Stream ``prices``: each cleared price by zone and slot (a later fetch a newer version),
    each price forecast value by run and slot; load and PV forecasts stay on the device, as do
    cleared prices of slots more than 14 days old (a backfilled history)."""
    slot = int(time.time()) // 3600 * 3600 + 86_400
    made = slot - 30 * 3600
    db.upsert_prices("DE_LU", [(slot, 81.5)], 3600, "entsoe", fetched_at=slot - 86_000.5)
    db.upsert_prices("DE_LU", [(slot, 82.0)], 3600, "entsoe", fetched_at=slot - 85_000.0)
    db.upsert_prices("DE_LU", [(slot - 16 * 86_400, 50.0)], 3600, "entsoe", fetched_at=slot - 85_000.0)
    db.insert_forecast("price", made, [(slot, 79.25), (slot + 900, 80.0)])
    db.insert_forecast("load", made, [(slot, 450.0)])
    queued = [(key, json.loads(data)) for _, key, data in db.outbox_after("prices", 0, 10)]
    assert queued == [
        (f"cleared:DE_LU:{slot}", {"kind": "cleared", "ts": slot - 86_000.5, "zone": "DE_LU", "slot": slot,
                                   "resolution_s": 3600, "price_eur_mwh": 81.5, "source": "entsoe"}),
        (f"cleared:DE_LU:{slot}", {"kind": "cleared", "ts": slot - 85_000.0, "zone": "DE_LU", "slot": slot,
                                   "resolution_s": 3600, "price_eur_mwh": 82.0, "source": "entsoe"}),
        (f"forecast:{made}:{slot}", {"kind": "forecast", "ts": made, "slot": slot, "forecast_eur_mwh": 79.25}),
        (f"forecast:{made}:{slot + 900}", {"kind": "forecast", "ts": made, "slot": slot + 900,
                                           "forecast_eur_mwh": 80.0}),
    ]


def test_events_record_alerts(db: Store) -> None:
    db.add_event("info", "control", "charge 2000 W", {"power_w": 2000}, ts=T0)
    db.add_event("critical", "disk_full", "disk full", ts=T0 + 1)
    assert [(e["kind"], e["data"]) for e in db.events()] == [("disk_full", None), ("control", {"power_w": 2000})]
    assert [e["kind"] for e in db.events(kind="control")] == ["control"]
    with pytest.raises(ValueError, match="event level: got 'loud', allowed: debug, info, warning, error, critical"):
        db.add_event("loud", "x", "y")


def test_retention_prunes_each_table_and_reports_unsynced_losses(tmp_path: Path) -> None:
    db = Store(tmp_path / "nattery.db", Retention(readings_days=2, aggregates_days=10, events_days=5))
    now = time.time()
    db.insert_readings([reading(now - d * DAY) for d in (3, 2.5, 1, 0)])
    db.set_sync_cursor("readings", 1)  # the oldest reading reached the cloud, the second did not
    db.db.execute("INSERT INTO settlements (ts, import_wh, export_wh, computed_at) VALUES (?, 1, 0, 1), (?, 1, 0, 1)",
                  [int(now - 11 * DAY), int(now - 9 * DAY)])
    db.set_sync_cursor("settlements", 1)
    db.add_event("info", "old", "old", ts=now - 6 * DAY)
    deleted = db.prune(now)
    assert (deleted["readings"], deleted["settlements"], deleted["events"]) == (2, 1, 1)
    assert deleted["outbox"] == 1  # the acknowledged settlement version
    assert db.count_readings() == 2
    (warning,) = db.events(kind="sync_data_pruned")
    assert warning["data"] == {"readings": 1}


def _fill_until_full(db: Store, started: float) -> None:
    db.set_sync_cursor("readings", 10**9)  # everything counts as synced
    batch = [reading(started + i) for i in range(1000)]
    for _ in range(1000):
        db.insert_readings(batch)
        if db.events(kind="disk_full"):
            break
    for _ in range(20):  # and it keeps going
        db.insert_readings(batch)


def test_full_database_prunes_alerts_and_keeps_writing(db: Store) -> None:
    pages = db.db.execute("PRAGMA page_count").fetchone()[0]
    db.db.execute(f"PRAGMA max_page_count = {pages + 300}")  # ~1.2 MB more, like a full SD card
    _fill_until_full(db, time.time())
    assert db.count_readings() > 0
    (alert, *_) = db.events(kind="disk_full")
    assert alert["level"] == "critical"
    assert alert["data"]["deleted_readings"] > 0
    assert db.latest_reading() is not None


def test_full_disk_that_pruning_cannot_fix_raises_store_full(db: Store) -> None:
    pages = db.db.execute("PRAGMA page_count").fetchone()[0]
    db.db.execute(f"PRAGMA max_page_count = {pages + 2}")
    huge = Reading(T0, {"soc_pct": 1.0}, {f"r{i}": float(i) for i in range(20_000)})
    with pytest.raises(StoreFull, match="disk full even after pruning"):
        db.insert_readings([huge])
    db.insert_readings([reading(T0)])  # a normal write still works afterwards
    assert db.count_readings() == 1


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB ext4 image mounted on a loop device: a real ENOSPC, like a full SD card (the
    size leaves the reserve (a tenth) larger than SQLite's 4 MB WAL, as on a real card)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop file system needs root (CI runs as root)")
    image, mount = tmp_path / "sd.img", tmp_path / "sd"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "48M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow loop mounts: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_filesystem_prunes_alerts_and_keeps_writing(small_filesystem: Path) -> None:
    db = Store(small_filesystem / "nattery.db")
    _fill_until_full(db, time.time())
    assert db.events(kind="disk_full")
    db.insert_readings([reading(time.time())])
    assert db.latest_reading() is not None
    db.close()


async def test_async_store_runs_calls_in_order_off_the_loop(tmp_path: Path) -> None:
    async with AsyncStore(tmp_path / "nattery.db") as store:
        await store.call(Store.insert_readings, [reading(T0)])
        await store.call(Store.set_sync_cursor, "readings", 1)
        assert await store.call(Store.sync_cursor, "readings") == 1
        assert await store.call(Store.pending, "readings", 0) == (1, T0)


def test_price_points_belong_to_one_zone_and_the_newest_fetch_wins(db: Store) -> None:
    rows = [
        {"zone": "DE_LU", "ts": 3600, "resolution_s": 3600, "price_eur_mwh": 50.0, "source": "csv", "fetched_at": 1.0},
        {"zone": "DE_LU", "ts": 3600, "resolution_s": 3600, "price_eur_mwh": 55.0, "source": "entsoe", "fetched_at": 2.0},
        {"zone": "NL", "ts": 3600, "resolution_s": 3600, "price_eur_mwh": 99.0, "source": "entsoe", "fetched_at": 3.0},
        {"zone": "NL", "ts": 7200, "resolution_s": 3600, "price_eur_mwh": 98.0, "source": "entsoe", "fetched_at": 3.0},
    ]
    db.db.table("prices").insert_all(rows)
    assert [(p["ts"], p["eur_mwh"]) for p in db.price_points("DE_LU", 0, 10_000)] == [(3600, 55.0)]
    assert [(p["ts"], p["eur_mwh"]) for p in db.price_points("NL", 0, 10_000)] == [(3600, 99.0), (7200, 98.0)]
