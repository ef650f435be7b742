"""The real `nattery bridge` and `nattery simulate` processes, as Balena runs them.

A kill -9 leaves the broker to publish the LWT; a SIGTERM (every Balena update) puts the
inverter back into self-consumption before the process exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.conftest import Broker, PtyPair

DEVICE = "proc1"
BAUD = "115200"  # the line speed of bridge and simulator: a poll takes a quarter of its time at the map's 9600


class Watcher:
    """A blocking MQTT client of the test's own (paho, as aiomqtt uses it underneath)."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, Any]] = []
        self._arrived = threading.Condition()  # wait_for wakes on each message, not on a poll period
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("nattery/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        try:
            payload: Any = json.loads(message.payload)
        except (ValueError, RecursionError):  # the fuzz tests send anything
            payload = message.payload.decode(errors="replace")
        with self._arrived:
            self.messages.append((message.topic, payload))
            self._arrived.notify_all()

    def wait_for(self, topic: str, predicate: Any = lambda p: True, timeout: float = 30, since: int = 0) -> Any:
        deadline = time.monotonic() + timeout
        seen = since
        with self._arrived:
            while True:
                for t, p in self.messages[seen:]:
                    if t == topic and predicate(p):
                        return p
                seen = max(seen, len(self.messages))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no message on {topic} matching; last: {self.messages[-3:]}")
                self._arrived.wait(left)

    def command(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        mark = len(self.messages)
        self.client.publish(f"nattery/{DEVICE}/cmd/{action}", json.dumps(payload), qos=1)
        return self.wait_for(f"nattery/{DEVICE}/cmd/result", lambda p: p.get("id") == payload["id"], since=mark)

    def close(self) -> None:
        self.client.disconnect()  # first: the network loop then ends at once, not at its next 1 s select timeout
        self.client.loop_stop()


def nattery(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("nattery")
    return subprocess.Popen([str(exe), *args], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def processes(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> Iterator[tuple[subprocess.Popen[bytes], Watcher, Path]]:
    state = tmp_path / "sim-mode.txt"
    sim = nattery("simulate", "--serial", pty_pair.b, "--speed", "60", "--baud", BAUD, env={})
    env = {
        "NATTERY_DEVICE_ID": DEVICE,
        "NATTERY_DEVICE_DATA_DIR": str(tmp_path),
        "NATTERY_INVERTER_PORT": f"serial://{pty_pair.a}",
        "NATTERY_INVERTER_POLL_INTERVAL_S": "0.5",
        "NATTERY_INVERTER_BAUDRATE": BAUD,
        "NATTERY_MQTT_HOST": "127.0.0.1",
        "NATTERY_MQTT_PORT": str(mosquitto.port),
        "NATTERY_BRIDGE_HEALTH_INTERVAL_S": "0.5",
        "NATTERY_BRIDGE_FLUSH_INTERVAL_S": "0.5",
        "NATTERY_BRIDGE_UPDATE_LOCK": str(tmp_path / "updates.lock"),  # not the one other tests' bridges share
    }
    watcher = Watcher(mosquitto.port)
    bridge = nattery("bridge", env=env)
    try:
        yield bridge, watcher, state
    finally:
        for proc in (bridge, sim):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        watcher.close()


def inverter_mode(watcher: Watcher) -> str:
    """The mode the inverter reports, read back through the bridge (the simulator is another process)."""
    mark = len(watcher.messages)
    reply = watcher.command("read_register", {"id": f"m{mark}", "name": "time_of_use"})
    return "self_consumption" if reply["value"] == 0 else "forced"


def test_sigterm_puts_the_inverter_back_into_self_consumption(processes: Any) -> None:
    bridge, watcher, _ = processes
    watcher.wait_for(f"nattery/{DEVICE}/telemetry")
    assert watcher.command("charge", {"id": "c1", "power_w": 2500})["ok"]
    assert inverter_mode(watcher) == "forced"
    bridge.send_signal(signal.SIGTERM)
    assert bridge.wait(30) == 0, bridge.stderr.read().decode()[-2000:] if bridge.stderr else ""
    assert watcher.wait_for(f"nattery/{DEVICE}/status", lambda s: s == "offline", since=0) == "offline"
    log = bridge.stderr.read().decode() if bridge.stderr else ""
    assert '"reason": "shutdown"' in log and "inverter in self_consumption" in log


def test_kill_9_leaves_the_lwt_offline(processes: Any) -> None:
    bridge, watcher, _ = processes
    assert watcher.wait_for(f"nattery/{DEVICE}/status", lambda s: s == "online") == "online"
    mark = len(watcher.messages)
    bridge.kill()
    bridge.wait(10)
    # mosquitto publishes the will once the keepalive (30 s × 1.5) or the socket close tells it
    assert watcher.wait_for(f"nattery/{DEVICE}/status", lambda s: s == "offline", since=mark, timeout=60)


def test_bad_configuration_exits_with_one_line(tmp_path: Path) -> None:
    proc = nattery("bridge", env={"NATTERY_INVERTER_PORT": "usb:/dev/ttyUSB0",
                                  "NATTERY_DEVICE_DATA_DIR": str(tmp_path)})
    assert proc.wait(30) == 1
    err = proc.stderr.read().decode().strip() if proc.stderr else ""
    assert err.startswith("Error: inverter.port: 'usb:/dev/ttyUSB0'"), err
    assert len(err.splitlines()) == 1
