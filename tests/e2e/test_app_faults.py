"""``kill -9`` of the real app at the points where its work is half done: a quarter-hour's
slots read but the settlement not committed, a plan stored but its setpoint not sent, and a
sync batch acknowledged by a real aggregator but its cursor not advanced. A manual discharge
makes every plan force the inverter; the upload is held back until it does and the controller
refreshes it, so the last kill is of an app holding the inverter in a forced mode, which only
the bridge's watchdog (a trip) can end. After each kill the inverter is in self-consumption
within ``bridge.watchdog_s``, and the restarted app finishes the interrupted work once: every
complete slot settled once (the day's totals count each slot once), and the aggregator holds
the device's readings, energy slots and settlements row for row.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from device import config as configuration
from device.store import Store
from tests.cloud_sync.aggregator import Aggregator, sqlite_aggregator  # noqa: F401
from tests.device.test_sync import assert_exact_match, fill
from tests.e2e.test_bridge_process import DEVICE, Watcher, inverter_mode
from tests.e2e.test_faults import WATCHDOG_S, Rig, back_in_self_consumption, rig  # noqa: F401

READINGS = 3000  # 4 h at 5 s: 16 complete slots, six upload batches


def manual_discharge(data_dir: Path) -> None:
    """The homeowner's manual discharge for the next hour, as the page would save it, with the
    prices known so that the app's first plan follows it at once."""
    now = time.time()
    zone = configuration.load([configuration.DEFAULT_FILE], environ={}).prices.zone
    store = Store(data_dir / "nattery.db")
    try:
        slot = int(now) // 900 * 900
        store.upsert_prices(zone, [(slot + 900 * i, 100.0) for i in range(-4, 96)], 900, "csv", now)
    finally:
        store.close()
    (data_dir / "settings.json").write_text(json.dumps(
        {"sections": {}, "override": {"action": "discharge", "power_w": 1500, "until": now + 3600}}))


def run_app(r: Rig, cloud: dict[str, str], crash: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    """The app; ``cloud`` (URL and credential) turns its sync on."""
    exe = Path(sys.executable).with_name("nattery")
    env = {**os.environ, **r.env, "NATTERY_WEB_PORT": "0", "NATTERY_PRICES_SOURCE": "csv", **cloud, **crash}
    with open(r.tmp_path / f"app-{name}.log", "wb") as log:
        return subprocess.Popen([str(exe), "app"], env=env, stdout=subprocess.DEVNULL, stderr=log)


def killed_at_its_point(app: subprocess.Popen[bytes], watcher: Watcher, r: Rig, name: str) -> dict[str, Any]:
    """The app died at its crash point and the inverter is in self-consumption; the bridge's health then."""
    assert app.wait(120) == -9, (r.tmp_path / f"app-{name}.log").read_text()[-2000:]
    killed_at, mark = time.monotonic(), len(watcher.messages)
    health: dict[str, Any] = watcher.wait_for(
        f"nattery/{DEVICE}/health", lambda h: h["watchdog"]["mode"] == "self_consumption"
        and not h["watchdog"]["safe_pending"], since=mark, timeout=WATCHDOG_S * 3)
    assert time.monotonic() - killed_at <= WATCHDOG_S + 3  # its period plus a check tick and a health tick
    assert inverter_mode(watcher) == "self_consumption"
    return health


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def synced(agg: Aggregator, stream: str) -> set[int]:
    return {int(float(k)) for k in agg.documents(DEVICE, stream)}


def test_kill_9_of_the_app_mid_work_is_finished_once_after_restart(
    rig: tuple[Rig, Watcher], sqlite_aggregator: Aggregator
) -> None:
    r, watcher = rig
    agg = sqlite_aggregator
    cloud = {"NATTERY_CLOUD_URL": agg.url, "NATTERY_CLOUD_CREDENTIAL": agg.add_device(DEVICE),
             "NATTERY_CLOUD_BATCH_SIZE": "500", "NATTERY_CLOUD_INTERVAL_S": "0.2",
             "NATTERY_CLOUD_BACKOFF_MIN_S": "0.1", "NATTERY_CLOUD_BACKOFF_MAX_S": "0.5"}
    # the upload waits for the aggregator until the plan's discharge is applied; the runs before that
    # need none, so it stops (a few seconds) while they run
    stopping = ThreadPoolExecutor(1)
    stopped = stopping.submit(agg.stop)
    db = r.tmp_path / "nattery.db"
    now = time.time()
    fill(db, READINGS, start=(now - READINGS * 5) // 900 * 900)  # history the app has not settled yet
    store = Store(db)
    try:
        store.update_energy_slots(now)  # derived, as housekeeping does, so the first round settles
        slots = [int(s["ts"]) for s in store.energy_slots(0, now) if s["complete"]]
    finally:
        store.close()
    assert len(slots) >= 12
    manual_discharge(r.tmp_path)  # every plan forces the inverter: each kill leaves it to the watchdog
    mark = len(watcher.messages)
    r.start()
    back_in_self_consumption(watcher, mark)

    app = run_app(r, {}, {"TEST_APP_CRASH": "settlement_read:1"}, "settlement")
    killed_at_its_point(app, watcher, r, "settlement")
    assert query(db, "SELECT count(*) FROM settlements") == [(0,)]  # nothing half-written

    app = run_app(r, {}, {"TEST_APP_CRASH": "plan_stored:1"}, "plan")
    killed_at_its_point(app, watcher, r, "plan")
    assert query(db, "SELECT count(*) FROM plans")[0][0] >= 1

    stopped.result()
    stopping.shutdown()
    mark = len(watcher.messages)
    app = run_app(r, cloud, {"TEST_SYNC_CRASH": "after_ack:2"}, "sync")
    forced = watcher.wait_for(f"nattery/{DEVICE}/health", lambda h: h["watchdog"]["mode"] == "discharge",
                              since=mark, timeout=120)
    # the controller keeps the forced mode alive: only the kill can end its refreshes
    watcher.wait_for(f"nattery/{DEVICE}/cmd/refresh", since=len(watcher.messages), timeout=WATCHDOG_S * 2)
    assert inverter_mode(watcher) == "forced"
    agg.start()
    health = killed_at_its_point(app, watcher, r, "sync")
    assert health["watchdog"]["trips"] > forced["watchdog"]["trips"]  # the watchdog did it: nobody else was left to
    # the aggregator holds a batch the device has not marked as sent: the restart sends it again
    assert query(db, "SELECT last_seq FROM sync_cursors WHERE stream = 'readings'") < [(len(agg.rows(DEVICE)),)]

    r.bridge.terminate()  # type: ignore[union-attr]  # no new readings: the comparison is of a still store
    assert r.bridge.wait(30) == 0  # type: ignore[union-attr]
    app = run_app(r, cloud, {}, "final")
    try:
        total = query(db, "SELECT count(*) FROM readings")[0][0]
        deadline = time.monotonic() + 120  # a hang becomes a failure; the wait is for the rows
        while len(agg.rows(DEVICE)) < total or not set(slots) <= synced(agg, "settlements"):
            assert time.monotonic() < deadline, "the restarted app did not finish the upload"
            assert app.poll() is None, (r.tmp_path / "app-final.log").read_text()[-2000:]
            time.sleep(0.1)
    finally:
        app.terminate()
        app.wait(30)
    settled = [int(ts) for (ts,) in query(db, "SELECT ts FROM settlements ORDER BY ts")]
    assert set(slots) <= set(settled), "a complete slot was never settled"
    day_slots = sum(json.loads(t)["slots"] for (t,) in query(db, "SELECT totals FROM settlement_days"))
    assert day_slots == len(settled), "a slot was counted twice in the day's totals"
    assert_exact_match(db, agg, DEVICE)
    for stream, sql in (("energy", "SELECT ts, import_wh FROM energy_slots"),
                        ("settlements", "SELECT ts, import_wh FROM settlements")):
        mine = {int(ts): wh for ts, wh in query(db, sql)}
        theirs = {int(float(k)): d["import_wh"] for k, d in agg.documents(DEVICE, stream).items()}
        assert mine == theirs, stream
