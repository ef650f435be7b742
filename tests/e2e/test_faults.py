"""``kill -9`` of the real bridge process at several points: mid-command, in a forced mode, at
phases of the flush cycle, and inside a flush (crash points before and after its commit). After each restart the inverter is back in self-consumption
within the watchdog time, and the store holds every reading the bridge had published, once.
test_app_faults kills the app mid-settlement, mid-planning and mid-upload (the last while its
controller holds the inverter in a forced mode: the bridge's watchdog lapses).

While the bridge is down nothing can command the inverter: it keeps its last mode until the
restarted bridge's start-up puts it into self-consumption (the Balena supervisor restarts a
killed container within seconds).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import Broker, PtyPair
from tests.e2e.test_bridge_process import BAUD, DEVICE, Watcher, inverter_mode

WATCHDOG_S = 5
TELEMETRY = f"nattery/{DEVICE}/telemetry"
CRASH_FLUSH_INTERVAL_S = "0.3"  # a crash run reaches its third flush within a second


class Rig:
    def __init__(self, tmp_path: Path, pty: str, broker: int) -> None:
        self.tmp_path = tmp_path
        self.env = {
            "NATTERY_DEVICE_ID": DEVICE,
            "NATTERY_DEVICE_DATA_DIR": str(tmp_path),
            "NATTERY_INVERTER_PORT": f"serial://{pty}",
            "NATTERY_INVERTER_POLL_INTERVAL_S": "0.2",
            "NATTERY_INVERTER_BAUDRATE": BAUD,
            "NATTERY_MQTT_HOST": "127.0.0.1",
            "NATTERY_MQTT_PORT": str(broker),
            "NATTERY_MQTT_DISCOVERY_PREFIX": "",
            "NATTERY_BRIDGE_HEALTH_INTERVAL_S": "0.5",
            "NATTERY_BRIDGE_FLUSH_INTERVAL_S": "1.0",
            "NATTERY_BRIDGE_WATCHDOG_S": str(WATCHDOG_S),
            "NATTERY_BRIDGE_UPDATE_LOCK": str(tmp_path / "updates.lock"),  # not the one other tests' bridges share
        }
        self.bridge: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, crash_at: str = "") -> subprocess.Popen[bytes]:
        """Start the bridge; ``crash_at`` (``flush_committed:2``) makes it SIGKILL itself there."""
        self.starts += 1
        log = open(self.tmp_path / f"bridge-{self.starts}.log", "wb")  # noqa: SIM115 — the process owns it
        exe = Path(sys.executable).with_name("nattery")
        env = {**os.environ, **self.env, "TEST_BRIDGE_CRASH": crash_at}
        if crash_at:
            env["NATTERY_BRIDGE_FLUSH_INTERVAL_S"] = CRASH_FLUSH_INTERVAL_S
        self.bridge = subprocess.Popen([str(exe), "bridge"], env=env, stdout=subprocess.DEVNULL, stderr=log)
        return self.bridge

    def kill(self) -> None:
        assert self.bridge is not None and self.bridge.poll() is None, "the bridge died on its own"
        self.bridge.kill()
        self.bridge.wait(10)

    def died_at_crash_point(self) -> None:
        assert self.bridge is not None
        assert self.bridge.wait(30) == -9


@pytest.fixture
def rig(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> Iterator[tuple[Rig, Watcher]]:
    exe = Path(sys.executable).with_name("nattery")
    sim = subprocess.Popen([str(exe), "simulate", "--serial", pty_pair.b, "--speed", "60", "--baud", BAUD],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watcher = Watcher(mosquitto.port)
    r = Rig(tmp_path, pty_pair.a, mosquitto.port)
    try:
        yield r, watcher
    finally:
        for proc in (r.bridge, sim):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
        watcher.close()


def published_ts(watcher: Watcher) -> list[float]:
    return [datetime.fromisoformat(p["ts"].replace("Z", "+00:00")).timestamp()
            for t, p in list(watcher.messages) if t == TELEMETRY]


def telemetry_after(watcher: Watcher, count: int) -> None:
    """Wait until ``count`` more telemetry messages have arrived (a point in the flush cycle)."""
    mark = len(watcher.messages)
    for _ in range(count):
        watcher.wait_for(TELEMETRY, since=mark)
        mark = next(i for i in range(len(watcher.messages) - 1, -1, -1) if watcher.messages[i][0] == TELEMETRY) + 1


def back_in_self_consumption(watcher: Watcher, since: int) -> None:
    started = time.monotonic()
    watcher.wait_for(f"nattery/{DEVICE}/health", lambda h: h["watchdog"]["mode"] == "self_consumption"
                     and not h["watchdog"]["safe_pending"], since=since, timeout=WATCHDOG_S + 10)
    assert inverter_mode(watcher) == "self_consumption"
    assert time.monotonic() - started < WATCHDOG_S + 10


def test_kill_9_of_the_bridge_loses_and_doubles_no_reading(rig: tuple[Rig, Watcher]) -> None:
    r, watcher = rig
    def forced_with_a_command_on_its_way() -> None:
        # in a forced mode, answered: the inverter discharges while the bridge is gone …
        assert watcher.command("discharge", {"id": "d1", "power_w": 2000})["ok"]
        assert inverter_mode(watcher) == "forced"
        # … and mid-command: the next command is on its way when the process dies
        watcher.client.publish(f"nattery/{DEVICE}/cmd/charge", '{"id": "c1", "power_w": 2500}', qos=1)

    kill_points: list[Callable[[], None]] = [
        forced_with_a_command_on_its_way,
        # at three more phases of the 1 s flush cycle (a poll every 0.2-0.3 s at this line speed)
        lambda: telemetry_after(watcher, 2),
        lambda: telemetry_after(watcher, 3),
        lambda: telemetry_after(watcher, 4),
    ]
    for act in kill_points:
        mark = len(watcher.messages)
        r.start()
        back_in_self_consumption(watcher, mark)
        telemetry_after(watcher, 3)
        act()
        r.kill()
    # mid-flush, deterministically: the batch taken but not written, and written but its journal kept
    for point in ("flush_started:3", "flush_committed:3"):
        r.start(crash_at=point)  # it may die before it answers anything: the next start is checked
        r.died_at_crash_point()
    mark = len(watcher.messages)
    r.start()
    back_in_self_consumption(watcher, mark)
    seen = published_ts(watcher)
    r.bridge.terminate()  # type: ignore[union-attr]
    assert r.bridge.wait(30) == 0  # type: ignore[union-attr]
    rows = sqlite3.connect(r.tmp_path / "nattery.db").execute("SELECT ts FROM readings").fetchall()
    stored = [int(ts * 1000) for (ts,) in rows]  # telemetry shows milliseconds, cut not rounded
    assert len(stored) == len(set(stored)), "a reading was stored twice"
    missing = {round(ts * 1000) for ts in seen} - set(stored)
    assert not missing, f"{len(missing)} of {len(seen)} published readings were lost: {sorted(missing)[:5]}"
    logs = "".join((r.tmp_path / f"bridge-{i}.log").read_text() for i in range(2, r.starts + 1))
    assert "readings recovered from the journal" in logs
