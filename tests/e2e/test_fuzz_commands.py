"""Fuzzing ``cmd/<action>`` against the real ``nattery bridge`` process, the simulator and mosquitto.

Every generated command is invalid by construction (a valid command plus one hostile mutation:
NaN, Infinity, 1e999, a boolean for a number, text, lists, an unknown field, a bad or missing
id, a stale timestamp, deep nesting, bytes that are not JSON, an unknown action). Each must be
answered on ``cmd/result`` with ``ok: false`` and a reason (and the caller's id whenever the
payload had a readable one), the inverter must not see a single write, the bridge must stay in
self-consumption and alive. (Retained commands are refused at start-up:
``tests/device/test_bridge.py``.) The example budget is fixed and the generation derandomised, so CI
runs the same examples in the same time.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.modbus.registermap import load_map
from device.simulator import Simulator
from tests.conftest import Broker, PtyPair
from tests.e2e.test_bridge_process import BAUD, Watcher

DEVICE = "proc1"  # the Watcher's device
BUDGET = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID: dict[str, dict[str, Any]] = {
    "charge": {"power_w": 1500, "hold_s": 60},
    "discharge": {"power_w": 1500},
    "hold": {"hold_s": 30},
    "self_consumption": {},
    "refresh": {"hold_s": 30},
    "read_register": {"name": "battery_soc"},
    "write_register": {"name": "max_charge_current", "value": 40},
}
NUMERIC = {"power_w", "hold_s", "value"}

hostile_numbers = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), True, False, None, -1, 0, 10**30, -(10**400)]),
    st.text(max_size=8), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                              max_size=2),
)
hostile_ids = st.one_of(st.none(), st.just(""), st.integers(), st.floats(allow_nan=True), st.lists(st.text(max_size=2)))


@st.composite
def hostile_commands(draw: st.DrawFn) -> tuple[str, bytes, str | None]:
    """(action, payload, id the reply must carry or None)."""
    action = draw(st.sampled_from(sorted(VALID)))
    message: dict[str, Any] = {"id": f"f{draw(st.integers(0, 10**6))}", **VALID[action]}
    kind = draw(st.sampled_from(["number", "id", "extra", "stale", "nesting", "bytes", "action", "register"]))
    if kind == "number":
        fields = sorted(NUMERIC & set(message)) or ["hold_s"]
        field = draw(st.sampled_from(fields))
        value = draw(hostile_numbers)
        if field == "hold_s" and value is None:
            value = "soon"  # a missing hold_s is allowed; null is its absence
        message[field] = value
    elif kind == "id":
        message["id"] = draw(hostile_ids)
    elif kind == "extra":
        message[draw(st.sampled_from(["colour", "mode", "power", "registers", "__proto__"]))] = draw(hostile_numbers)
    elif kind == "stale":
        message["ts"] = draw(st.sampled_from([time.time() - 3600, time.time() + 3600, 0, "2000-01-01T00:00:00Z"]))
    elif kind == "action":
        action = draw(st.sampled_from(["explode", "result2", "CHARGE", "dr_event_", "charge ", "ü"]))
    elif kind == "register":
        message["name"] = draw(st.sampled_from(["battery_soc", "nope", "", "max_charge_current "])) \
            if action.endswith("_register") else draw(st.text(max_size=5))
        if action == "write_register" and message["name"] == "max_charge_current ":
            message["name"] = "battery_soc"  # read-only
    if kind == "nesting":
        depth = draw(st.integers(2_000, 200_000))
        payload = json.dumps({**message, "x": 0}).encode().replace(b'"x": 0', b'"x": ' + b"[" * depth + b"]" * depth)
    elif kind == "bytes":
        payload = draw(st.binary(min_size=1, max_size=64).filter(lambda b: not _is_json_object(b)))
    else:
        payload = json.dumps(message).encode()  # Python writes NaN, Infinity, -Infinity literally
    wanted = message.get("id") if kind not in ("bytes", "nesting") and isinstance(message.get("id"), str) else None
    return action, payload, wanted or None


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        return False


@dataclass
class Stack:
    sim: Simulator
    bridge: subprocess.Popen[bytes]
    watcher: Watcher


def _serve_simulator(sim: Simulator, path: str, ready: threading.Event, stop: threading.Event) -> None:
    async def main() -> None:
        await sim.serve_serial(path)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await sim.close()

    asyncio.run(main())


@pytest.fixture
def stack(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> Iterator[Stack]:
    sim = Simulator(load_map("deye_hybrid_1p"), speed=60.0, baudrate=int(BAUD))
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=_serve_simulator, args=(sim, pty_pair.b, ready, stop), daemon=True)
    thread.start()
    assert ready.wait(10)
    env = {
        "NATTERY_DEVICE_ID": DEVICE, "NATTERY_DEVICE_DATA_DIR": str(tmp_path),
        "NATTERY_INVERTER_PORT": f"serial://{pty_pair.a}", "NATTERY_INVERTER_POLL_INTERVAL_S": "0.5",
        "NATTERY_INVERTER_BAUDRATE": BAUD,
        "NATTERY_MQTT_HOST": "127.0.0.1", "NATTERY_MQTT_PORT": str(mosquitto.port),
        "NATTERY_MQTT_DISCOVERY_PREFIX": "", "NATTERY_BRIDGE_HEALTH_INTERVAL_S": "0.5",
        "NATTERY_BRIDGE_UPDATE_LOCK": str(tmp_path / "updates.lock"),  # not the one other tests' bridges share
    }
    watcher = Watcher(mosquitto.port)
    log = open(tmp_path / "bridge.log", "wb")  # noqa: SIM115 — the process owns it
    bridge = subprocess.Popen([str(Path(sys.executable).with_name("nattery")), "bridge"],
                              env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    try:
        watcher.wait_for(f"nattery/{DEVICE}/health", lambda h: not h["watchdog"]["safe_pending"])
        yield Stack(sim, bridge, watcher)
    finally:
        bridge.kill()
        bridge.wait(10)
        watcher.close()
        stop.set()
        thread.join(10)


def writes(sim: Simulator) -> int:
    return sim.stats.functions.get(6, 0) + sim.stats.functions.get(16, 0)


def test_hostile_commands_are_refused_and_change_nothing(stack: Stack) -> None:
    written = writes(stack.sim)
    result_topic = f"nattery/{DEVICE}/cmd/result"

    @BUDGET
    @given(hostile_commands())
    def refused(command: tuple[str, bytes, str | None]) -> None:
        action, payload, wanted = command
        mark = len(stack.watcher.messages)
        stack.watcher.client.publish(f"nattery/{DEVICE}/cmd/{action}", payload, qos=1)
        reply = stack.watcher.wait_for(result_topic, lambda p: isinstance(p, dict), timeout=15, since=mark)
        assert reply["ok"] is False and isinstance(reply["error"], str) and reply["error"], reply
        assert reply["id"] == wanted, (reply, wanted)
        assert stack.bridge.poll() is None, "the bridge died"
        assert writes(stack.sim) == written, f"the inverter was written to by {payload[:200]!r}"
        assert stack.sim.mode == "self_consumption"

    refused()
    mark = len(stack.watcher.messages)
    health = stack.watcher.wait_for(f"nattery/{DEVICE}/health", since=mark)
    assert health["watchdog"]["mode"] == "self_consumption"
    assert {t["restarts"] for t in health["tasks"].values()} == {0}
    assert health["mqtt"]["handler_errors"] == 0
