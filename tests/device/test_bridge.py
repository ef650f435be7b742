"""The bridge in-process against the simulator over a socat pty pair and a real mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from device import config as configuration
from device.clock import SYSTEM_CLOCK, Clock
from device.bridge import Watchdog
from device.modbus.inverter import Snapshot
from device.modbus.registermap import load_map
from device.services.bridge import run_bridge
from device.simulator import Simulator
from tests.conftest import Broker, PtyPair
from tests.device.test_update_lock import flocked_by_someone_else
from tests.simulated_clock import SimulatedClock, settle

DEVICE = "t1"


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait (real time) for an effect of real I/O, such as the simulator's mode after a write."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@dataclass
class Listener:
    """Collects every message under nattery/# and homeassistant/# from its own MQTT client."""

    client: aiomqtt.Client
    messages: list[tuple[str, Any]] = field(default_factory=list)
    new: asyncio.Event = field(default_factory=asyncio.Event)

    async def collect(self) -> None:
        async for message in self.client.messages:
            raw = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                payload: Any = json.loads(raw)
            except (ValueError, RecursionError):
                payload = raw.decode(errors="replace")
            self.messages.append((message.topic.value, payload))
            self.new.set()

    async def wait_for(
        self, topic: str, predicate: Any = lambda p: True, timeout: float = 15.0, since: int = 0
    ) -> Any:
        """The first message on ``topic`` from index ``since`` on that satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            seen = since
            while True:
                for t, p in self.messages[seen:]:
                    if t == topic and predicate(p):
                        return p
                seen = len(self.messages)
                self.new.clear()
                await self.new.wait()

    async def command(self, action: str, payload: Any, timeout: float = 15.0) -> dict[str, Any]:
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        mark = len(self.messages)
        await self.client.publish(f"nattery/{DEVICE}/cmd/{action}", body, qos=1)
        wanted = _id_of(payload)
        return await self.wait_for(
            f"nattery/{DEVICE}/cmd/result", lambda p: p.get("id") == wanted, timeout, since=mark
        )


@contextlib.asynccontextmanager
async def listening(port: int) -> AsyncIterator[Listener]:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe("nattery/#", qos=1)
        await client.subscribe("homeassistant/#", qos=1)
        listener = Listener(client)
        task = asyncio.create_task(listener.collect())
        try:
            yield listener
        finally:
            task.cancel()


# The bridge's tests are about the bridge, not the line: they run it at the fastest baud rate
# (the map's own 9600 baud made every poll and command wait ~12 times longer on the pty) and
# with 10 ms between transactions instead of the Deye's 50 ms (an apply is ~8 of them), bridge
# and simulated firmware alike. The line's timing at the maps' own settings is the worker's and
# the simulator's tests'.
LINE_BAUD = 115200
LINE_GAP_MS = 10


def bridge_config(tmp_path: Path, pty: str, broker_port: int, inverter_map: str = "deye_hybrid_1p",
                  **bridge: Any) -> configuration.Config:
    return configuration.load(
        [configuration.DEFAULT_FILE],
        environ={},
        overrides={
            "device": {"id": DEVICE, "data_dir": str(tmp_path)},
            "inverter": {"port": f"serial://{pty}", "poll_interval_s": 0.5, "timeout_s": 0.5, "map": inverter_map,
                         "baudrate": LINE_BAUD, "gap_ms": LINE_GAP_MS},
            "mqtt": {"host": "127.0.0.1", "port": broker_port},
            "bridge": {"flush_interval_s": 0.5, "health_interval_s": 0.5,
                       "update_lock": str(tmp_path / "balena" / "updates.lock"), **bridge},
        },
    )


@dataclass
class Rig:
    sim: Simulator
    cfg: configuration.Config
    stop: asyncio.Event
    task: asyncio.Task[None]
    mqtt: Listener


@contextlib.asynccontextmanager
async def rig(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker, clock: Clock = SYSTEM_CLOCK,
    inverter_family: str = "deye_hybrid_1p", inverter_map: str = "deye_hybrid_1p",
    firmware_clock: Clock | None = None, **bridge: Any
) -> AsyncIterator[Rig]:
    """The bridge (map ``inverter_map``) against a simulated ``inverter_family`` (its firmware on
    ``firmware_clock`` if given, else on its own time at 600 × real time)."""
    sim = Simulator(load_map(inverter_family), baudrate=LINE_BAUD, gap_s=LINE_GAP_MS / 1000, speed=600.0,
                    clock=firmware_clock)
    await sim.serve_serial(pty_pair.b)
    cfg = bridge_config(tmp_path, pty_pair.a, mosquitto.port, inverter_map, **bridge)
    stop = asyncio.Event()
    async with listening(mosquitto.port) as mqtt:
        task = asyncio.create_task(run_bridge(cfg, stop, clock=clock))
        try:
            await mqtt.wait_for(f"nattery/{DEVICE}/telemetry")
            yield Rig(sim, cfg, stop, task, mqtt)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await sim.close()
    assert sim.stats.violations == 0  # the bridge kept the gap it was given (gap_ms) before every frame


def test_the_installers_line_settings_override_the_maps(tmp_path: Path) -> None:
    from device.services.bridge import line_protocol

    deye = load_map("deye_hybrid_1p")
    protocol = line_protocol(bridge_config(tmp_path, "/dev/null", 1), deye).protocol
    assert (protocol.baudrate, protocol.gap_s) == (LINE_BAUD, LINE_GAP_MS / 1000)
    assert (deye.protocol.baudrate, deye.protocol.gap_s) == (9600, 0.05)
    defaults = configuration.load([configuration.DEFAULT_FILE], environ={})
    assert line_protocol(defaults, deye) is deye  # null everywhere: the map's own line


async def test_telemetry_is_published_and_buffered(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        t = await r.mqtt.wait_for(f"nattery/{DEVICE}/telemetry")
        assert t["ts"].endswith("Z")
        assert 0 <= t["soc_pct"] <= 100
        assert abs(t["soc_pct"] - r.sim.battery.soc_pct) < 2
        assert t["registers"]["battery_soc"] == t["soc_pct"]
        # the house balances: load = pv + grid + battery (all W, our signs), to rounding
        assert abs(t["load_w"] - (t["pv_w"] + t["grid_w"] + t["battery_w"])) <= 3
        assert t["state"] == "normal"
        assert await r.mqtt.wait_for(f"nattery/{DEVICE}/status") == "online"
        health = await r.mqtt.wait_for(f"nattery/{DEVICE}/health", lambda h: h["readings_written"] >= 2)
        assert health["inverter_online"] is True
        assert health["modbus"]["transactions"] > 0
        ok = await r.mqtt.wait_for(f"nattery/{DEVICE}/health", lambda h: h["inverter_identity"] != "unchecked")
        assert ok["inverter_identity"] == "ok"  # the startup fallback read the device type first
        discovery = await r.mqtt.wait_for(f"homeassistant/sensor/nattery_{DEVICE}/soc_pct/config")
        assert discovery["state_topic"] == f"nattery/{DEVICE}/telemetry"
        assert discovery["unit_of_measurement"] == "%"
    rows = sqlite3.connect(tmp_path / "nattery.db").execute(
        "SELECT count(*), min(soc_pct) FROM readings"
    ).fetchone()
    assert rows[0] >= 2 and rows[1] is not None


async def test_charge_command_charges_the_simulated_battery(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        mark = len(r.mqtt.messages)
        result = await r.mqtt.command("charge", {"id": "c1", "power_w": 3000})
        assert result["ok"] is True, result
        assert result["applied_at"].endswith("Z")
        assert r.sim.mode == "charge"
        assert r.sim.mode_params["power_w"] == pytest.approx(3000, abs=50)
        telemetry = f"nattery/{DEVICE}/telemetry"
        first = await r.mqtt.wait_for(telemetry, lambda p: p["mode"] == "charge", since=mark)
        mark = len(r.mqtt.messages)
        later = await r.mqtt.wait_for(telemetry, lambda p: p["soc_pct"] >= first["soc_pct"] + 2, since=mark)
        assert later["mode"] == "charge"
        assert later["battery_w"] < -2500  # charging: negative battery power
        back = await r.mqtt.command("self_consumption", {"id": "s1"})
        assert back["ok"] is True and r.sim.mode == "self_consumption"


BAD_COMMANDS: list[tuple[str, Any, str]] = [
        ("charge", b"{not json", "payload is not valid JSON"),
        ("charge", b"[1, 2]", "payload must be a JSON object"),
        ("charge", {"power_w": 1000}, "'id' must be a non-empty string"),
        ("charge", {"id": "x1", "power_w": 99999}, "power_w"),
        ("charge", {"id": "x2", "power_w": -5}, "power_w"),
        ("charge", {"id": "x3"}, "power_w"),
        ("charge", {"id": "x4", "power_w": 1000, "colour": "red"}, "colour"),
        ("charge", {"id": "x5", "power_w": 1000, "hold_s": -1}, "hold_s must be a positive number"),
        ("explode", {"id": "x6"}, "unknown action 'explode'; allowed: self_consumption, charge"),
        ("write_register", {"id": "x7", "name": "battery_soc", "value": 5}, "battery_soc"),
        ("write_register", {"id": "x8", "name": "nope", "value": 5}, "'name': unknown register 'nope' in map"),
        ("read_register", {"id": "x9"}, "'name': unknown register None in map"),
        # the map's check of a written value, enum included (it used to be the web page's alone)
        ("write_register", {"id": "x10", "name": "energy_pattern", "value": 7},
         "energy_pattern: got 7, allowed: 0 (battery_first), 1 (load_first)"),
        ("write_register", {"id": "x11", "name": "energy_pattern", "value": 0.5}, "energy_pattern: got 0.5, allowed"),
        # NaN reached the watchdog (never lapsing) and the health JSON (ending the process)
        ("discharge", b'{"id": "n1", "power_w": 1000, "hold_s": NaN}', "NaN is not a JSON number"),
        ("charge", b'{"id": "n2", "power_w": Infinity}', "Infinity is not a JSON number"),
        ("charge", b'{"id": "n3", "power_w": 1e999}', "1e999 is out of range"),
        ("charge", {"id": "n4", "power_w": True}, "power_w must be a number, got True"),
        ("refresh", {"id": "n5", "hold_s": True}, "hold_s must be a positive number of seconds, got True"),
        ("write_register", {"id": "n6", "name": "max_charge_current", "value": False}, "must be a finite number"),
        ("charge", {"id": "n7", "power_w": 1000, "ts": 1_000_000_000}, "commands more than 10 s old or ahead are refused"),
        ("charge", b'{"id": "n8", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
]


async def test_bad_commands_are_answered_and_never_reach_the_inverter(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        await r.mqtt.wait_for(f"nattery/{DEVICE}/health", lambda h: not h["watchdog"]["safe_pending"])
        writes_before = r.sim.stats.functions.get(16, 0) + r.sim.stats.functions.get(6, 0)
        for action, payload, error in BAD_COMMANDS:
            result = await r.mqtt.command(action, payload)
            assert result["ok"] is False, (action, payload)
            assert result["id"] == _id_of(payload), result
            assert error in result["error"], (action, payload, result["error"])
        assert r.sim.stats.functions.get(16, 0) + r.sim.stats.functions.get(6, 0) == writes_before
        assert r.sim.mode == "self_consumption"


async def test_a_three_phase_deye_is_refused_by_the_single_phase_map(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    """Its programme registers are elsewhere: nothing may be written, and the reply says why."""
    async with rig(tmp_path, pty_pair, mosquitto, inverter_family="deye_hybrid_3p") as r:
        assert r.cfg.inverter.map == "deye_hybrid_1p"
        result = await r.mqtt.command("charge", {"id": "c1", "power_w": 1000})
        assert result["ok"] is False
        assert result["error"] == (
            "not a Deye / Sunsynk single-phase hybrid (SG01LP1 family) (map deye_hybrid_1p): device_type "
            "(holding 0) reads 5 (three-phase LV hybrid (map deye_hybrid_3p)), expected 3 (single-phase "
            "hybrid) or 768 (single-phase hybrid); nothing written")
        installer = await r.mqtt.command("write_register", {"id": "w1", "name": "grid_charge_enable", "value": 1})
        assert installer["ok"] is False and "device_type (holding 0) reads 5" in installer["error"]
        # not even the startup fallback to self-consumption was written
        assert r.sim.stats.functions.get(16, 0) + r.sim.stats.functions.get(6, 0) == 0
        assert r.sim.mode == "self_consumption" and r.sim.image.get("time_of_use") == 0
        health = await r.mqtt.wait_for(f"nattery/{DEVICE}/health", lambda h: h["inverter_identity"] != "unchecked")
        assert health["inverter_identity"] == result["error"]
    assert r.sim.stats.functions.get(16, 0) + r.sim.stats.functions.get(6, 0) == 0  # nor at shutdown


def _id_of(payload: Any) -> Any:
    if isinstance(payload, dict):
        return payload.get("id")
    with contextlib.suppress(ValueError, RecursionError):  # lenient, like the bridge looking for the id
        found = json.loads(payload)
        return found.get("id") if isinstance(found, dict) else None
    return None


async def test_after_bad_commands_the_bridge_lives_and_obeys(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        nan = await r.mqtt.command("discharge", b'{"id": "n1", "power_w": 1000, "hold_s": NaN}')
        assert nan["ok"] is False
        mark = len(r.mqtt.messages)
        health = await r.mqtt.wait_for(f"nattery/{DEVICE}/health", since=mark)
        assert health["watchdog"]["mode"] == "self_consumption"
        assert {t["restarts"] for t in health["tasks"].values()} == {0} and health["tasks"]["poll"]["state"] == "running"
        assert (await r.mqtt.command("discharge", {"id": "ok1", "power_w": 1000, "hold_s": 30}))["ok"]
        assert r.sim.mode == "discharge"
    assert not r.task.exception()


async def test_a_retained_command_is_refused_answered_and_cleared(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish(f"nattery/{DEVICE}/cmd/discharge", json.dumps({"id": "old", "power_w": 3000}),
                             qos=1, retain=True)
    async with listening(mosquitto.port) as early, rig(tmp_path, pty_pair, mosquitto) as r:
        reply = await early.wait_for(f"nattery/{DEVICE}/cmd/result", lambda p: p.get("id") == "old")
        assert reply["ok"] is False and "retained commands are refused" in reply["error"]
        health = await early.wait_for(f"nattery/{DEVICE}/health", lambda h: h["commands_failed"] == 1)
        assert health["watchdog"]["mode"] == "self_consumption" and health["watchdog"]["trips"] == 0
        assert r.sim.mode == "self_consumption"
    async with listening(mosquitto.port) as late:  # the broker no longer holds it
        await late.wait_for(f"nattery/{DEVICE}/status")
        assert not [t for t, _ in late.messages if t.endswith("/cmd/discharge")]


async def test_a_flood_of_register_reads_does_not_stop_telemetry(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    """500 read_register commands once stopped telemetry for 30 s: register commands outrank
    telemetry on the line, so each telemetry cycle admits only a share of them."""
    from device.bridge import REGISTER_COMMANDS_PER_CYCLE

    async with rig(tmp_path, pty_pair, mosquitto) as r:
        telemetry, result = f"nattery/{DEVICE}/telemetry", f"nattery/{DEVICE}/cmd/result"
        start = len(r.mqtt.messages)
        await asyncio.gather(*(r.mqtt.client.publish(f"nattery/{DEVICE}/cmd/read_register",
                                                      json.dumps({"id": f"q{i}", "name": "battery_soc"}), qos=1)
                               for i in range(500)))
        await r.mqtt.wait_for(result, lambda p: p.get("id") == "q499", timeout=60, since=start)
        await r.mqtt.wait_for(result, lambda p: p.get("ok") is True, since=start)
        # every command answered; those beyond the share refused with the reason
        async with asyncio.timeout(60):
            while len({p["id"] for t, p in r.mqtt.messages[start:] if t == result}) < 500:
                r.mqtt.new.clear()
                await r.mqtt.new.wait()
        replies = [p for t, p in r.mqtt.messages[start:] if t == result]
        served = [p for p in replies if p["ok"]]
        refused = [p for p in replies if not p["ok"]]
        # telemetry went on between the served reads: never more than one share without a poll
        run = 0
        for t, p in r.mqtt.messages[start:]:
            if t == telemetry:
                run = 0
            elif t == result and p.get("ok"):
                run += 1
                assert run <= 2 * REGISTER_COMMANDS_PER_CYCLE, "telemetry starved by register reads"
        assert all("busy" in p["error"] and "retry after the next telemetry" in p["error"] for p in refused)
        assert served and all(p["value"] is not None for p in served)
        await r.mqtt.wait_for(f"nattery/{DEVICE}/health", lambda h: h["register_commands_refused"] == len(refused),
                              since=start)


async def test_installer_reads_and_writes_one_register(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        wrote = await r.mqtt.command("write_register", {"id": "w1", "name": "max_charge_current", "value": 42})
        assert wrote["ok"] is True, wrote
        read = await r.mqtt.command("read_register", {"id": "r1", "name": "max_charge_current"})
        assert read == {"id": "r1", "ok": True, "name": "max_charge_current", "value": 42}


async def next_health(r: Rig, clock: SimulatedClock, predicate: Callable[[Any], bool]) -> Any:
    """The first health report that satisfies ``predicate``, moving the bridge's time a health
    interval at a time (health goes out once per interval of *its* clock). What the report is
    to show may still be on the line (a write being verified): each step gives it 0.2 s of real
    time, 20 s in all."""
    for _ in range(100):
        await clock.advance(r.cfg.bridge.health_interval_s)
        with contextlib.suppress(TimeoutError):
            return await r.mqtt.wait_for(f"nattery/{DEVICE}/health", predicate, timeout=0.2)
    raise AssertionError("no health report satisfied the predicate")


async def test_watchdog_returns_to_self_consumption(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    """On simulated time: the bridge's loops sleep on a clock that moves only when the test says."""
    clock = SimulatedClock(auto=False)
    async with rig(tmp_path, pty_pair, mosquitto, clock, watchdog_s=5) as r:
        await until(lambda: r.sim.stats.functions.get(16, 0) >= 1)  # the start-up fallback was written
        assert (await r.mqtt.command("discharge", {"id": "d1", "power_w": 2000}))["ok"]
        assert r.sim.mode == "discharge"
        # refreshes keep it alive past the timeout …
        for i in range(4):
            await clock.advance(2)
            assert (await r.mqtt.command("refresh", {"id": f"f{i}"}))["mode"] == "discharge"
        await clock.advance(4.9)  # just inside the 5 s since the last refresh
        assert r.sim.mode == "discharge"
        # … silence does not
        await clock.advance(0.6)
        await until(lambda: r.sim.mode == "self_consumption")
        health = await next_health(r, clock, lambda h: h["watchdog"]["trips"] == 1)
        assert (health["watchdog"]["trips"], health["watchdog"]["mode"]) == (1, "self_consumption")


async def test_hold_s_shortens_a_command_lifetime(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    clock = SimulatedClock(auto=False)
    async with rig(tmp_path, pty_pair, mosquitto, clock, watchdog_s=600) as r:
        await until(lambda: r.sim.stats.functions.get(16, 0) >= 1)  # the start-up fallback was written
        assert (await r.mqtt.command("charge", {"id": "h1", "power_w": 1000, "hold_s": 2}))["ok"]
        await clock.advance(1.9)
        assert r.sim.mode == "charge"
        await next_health(r, clock, lambda h: h["watchdog"]["trips"] == 1)
        assert r.sim.mode == "self_consumption"


async def test_a_forced_mode_the_inverter_forgets_is_written_again_until_self_consumption(
        tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    """KOSTAL drops external control not written again within its timeout (the map's
    control_timeout_s 60 s, which the simulated firmware plays on the same simulated clock as the
    bridge): the bridge writes the charge again every refresh_s (30 s) through its queue, so it
    lasts a whole 15-minute slot; after self_consumption it writes nothing more."""
    clock = SimulatedClock(auto=False)
    async with rig(tmp_path, pty_pair, mosquitto, clock, inverter_family="kostal_plenticore",
                   inverter_map="kostal_plenticore", firmware_clock=clock, watchdog_s=3600,
                   health_interval_s=10, flush_interval_s=10) as r:  # fewer wake-ups per 10 s step
        await until(lambda: r.sim.stats.functions.get(16, 0) >= 1)  # the start-up fallback was written
        before = r.sim.stats.functions[16]
        assert (await r.mqtt.command("charge", {"id": "c1", "power_w": 2000}))["ok"]
        written = r.sim.stats.functions[16]
        frames = written - before  # FC16 frames one charge takes (1034-1035, 1038-1041)
        for second in range(10, 901, 10):  # a plan slot, 10 s at a time
            await clock.advance(10)
            if second % 30 == 0:  # the rewrite goes out over the pty: wait for it (real I/O)
                written += frames
                await until(lambda wanted=written: r.sim.stats.functions[16] >= wanted)
            r.sim.step()  # the firmware looks at its clock
            assert (r.sim.mode, r.sim.image.get("battery_power_setpoint")) == ("charge", -2000.0), second
        health = await next_health(r, clock, lambda h: h["control_rewrites"] >= 30)
        assert health["watchdog"]["mode"] == "charge"
        assert (await r.mqtt.command("self_consumption", {"id": "s1"}))["ok"]
        assert r.sim.mode == "self_consumption"
        written = r.sim.stats.functions[16]
        await clock.advance(120)
        r.sim.step()
        assert r.sim.stats.functions[16] == written and r.sim.mode == "self_consumption"


async def test_broker_restart_bridge_reconnects(tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        mosquitto.restart()
        async with listening(mosquitto.port) as again:
            assert await again.wait_for(f"nattery/{DEVICE}/status") == "online"
            await again.wait_for(f"nattery/{DEVICE}/telemetry")
            health = await again.wait_for(f"nattery/{DEVICE}/health", lambda h: h["mqtt"]["connects"] >= 2)
            assert health["mqtt"]["disconnects"] >= 1
            result = await again.command("hold", {"id": "after-restart"})
            assert result["ok"] is True and r.sim.mode == "hold"


async def test_shutdown_returns_inverter_to_self_consumption(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        assert (await r.mqtt.command("charge", {"id": "c9", "power_w": 2000}))["ok"]
        assert r.sim.mode == "charge"
        r.stop.set()
        await asyncio.wait_for(r.task, 30)
        assert r.sim.mode == "self_consumption"
        assert await r.mqtt.wait_for(f"nattery/{DEVICE}/status", lambda s: s == "offline") == "offline"


def update_lock_taken(path: Path) -> bool:
    """Whether the lock is held as Balena looks: the file exists (supervisor) and is flocked (host OS)."""
    if not path.exists():
        return False
    assert flocked_by_someone_else(path), f"{path} exists but nobody holds its flock"
    return True


async def test_update_lock_is_held_while_forced_and_released_after(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        lock = r.cfg.bridge.update_lock
        await until(lambda: r.sim.stats.functions.get(16, 0) >= 1)  # the start-up fallback was written
        assert not update_lock_taken(lock)
        assert (await r.mqtt.command("charge", {"id": "l1", "power_w": 1500}))["ok"]
        assert r.sim.mode == "charge" and update_lock_taken(lock)
        assert (await r.mqtt.command("hold", {"id": "l2"}))["ok"]
        assert r.sim.mode == "hold" and update_lock_taken(lock)
        assert (await r.mqtt.command("self_consumption", {"id": "l3"}))["ok"]
        assert r.sim.mode == "self_consumption" and not update_lock_taken(lock)
        assert (await r.mqtt.command("discharge", {"id": "l4", "power_w": 1000}))["ok"]
        assert update_lock_taken(lock)
        r.stop.set()  # shutdown returns to self-consumption and lets the update go ahead
        await asyncio.wait_for(r.task, 30)
        assert r.sim.mode == "self_consumption" and not update_lock_taken(lock)


async def healthcheck(cfg: configuration.Config) -> int:
    """The compose file's health check of the bridge service, as a process."""
    env = {**os.environ, "NATTERY_DEVICE_ID": cfg.device.id, "NATTERY_MQTT_HOST": cfg.mqtt.host,
           "NATTERY_MQTT_PORT": str(cfg.mqtt.port), "NATTERY_BRIDGE_HEALTH_INTERVAL_S": str(cfg.bridge.health_interval_s)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "device.services.healthcheck", env=env,
                                                stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 or b"no health from the bridge" in err, err
    return proc.returncode if proc.returncode is not None else -1


async def test_healthcheck_passes_while_the_bridge_runs_and_fails_after(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    async with rig(tmp_path, pty_pair, mosquitto) as r:
        assert await healthcheck(r.cfg) == 0
        r.stop.set()
        await asyncio.wait_for(r.task, 30)
        assert await healthcheck(r.cfg) == 1  # the retained last health is not taken for a live one


async def test_watchdog_lapses_only_after_timeout() -> None:
    clock = SimulatedClock(auto=False)
    dog = Watchdog(10, clock)
    assert dog.lapsed  # unknown inverter state until self_consumption was applied once
    dog.commanded("self_consumption", {}, None)
    await clock.advance(1e6)
    assert not dog.lapsed  # the safe mode never lapses
    dog.commanded("charge", {"power_w": 1}, None)
    await clock.advance(9.9)
    assert not dog.lapsed
    dog.refresh()
    await clock.advance(9.9)
    assert not dog.lapsed
    await clock.advance(0.2)
    assert dog.lapsed


async def test_watchdog_refuses_a_lifetime_that_would_never_lapse() -> None:
    dog = Watchdog(10, SimulatedClock(auto=False))
    for never in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="hold_s must be finite"):
            dog.commanded("discharge", {"power_w": 1000}, never)
    assert dog.mode == "self_consumption" and dog.lapsed  # unchanged, and the safe mode still pending


async def test_concurrent_flushes_write_each_reading_once(tmp_path: Path) -> None:
    """The flush loop and a shutdown can flush at the same moment: no reading twice, none lost."""
    from types import SimpleNamespace

    from device.bridge import Bridge
    from device.store import AsyncStore, Reading

    cfg = bridge_config(tmp_path, "/dev/null", 1)
    async with AsyncStore(tmp_path / "nattery.db") as store:
        bridge = Bridge(cfg, SimpleNamespace(regmap=load_map("deye_hybrid_1p")), store)  # type: ignore[arg-type]
        for i in range(100):
            bridge._buffer.append(Reading(1_800_000_000 + i, {"soc_pct": 50.0}, {}))
        await asyncio.gather(bridge._flush(), bridge._flush(), bridge._flush())
        assert bridge.counters["readings_written"] == 100
        assert not bridge._buffer
    rows = sqlite3.connect(tmp_path / "nattery.db").execute("SELECT count(*), count(DISTINCT ts) FROM readings").fetchone()
    assert rows == (100, 100)


class TimedInverter:
    """Telemetry reads that take the given durations of the clock's time (the last one repeats);
    records when each read started."""

    def __init__(self, clock: SimulatedClock, read_s: list[float]) -> None:
        self.regmap = load_map("deye_hybrid_1p")
        self.clock = clock
        self.read_s = read_s
        self.started: list[float] = []

    async def read_telemetry(self) -> Snapshot:
        self.started.append(round(self.clock.monotonic() - 1000.0, 6))
        await self.clock.sleep(self.read_s[min(len(self.started), len(self.read_s)) - 1])
        return Snapshot(self.clock.time(), {"soc_pct": 50.0}, {})


@pytest.mark.parametrize(("read_s", "starts"), [
    ([0.2], [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),  # on the interval, however long each read takes
    # two reads slower than the interval, then fast ones: back to back while slow, then on the
    # interval again from the late poll on, with no burst to catch up the polls missed
    ([0.8, 0.8, 0.1], [0.0, 0.8, 1.6, 2.1, 2.6]),
])
async def test_poll_loop_keeps_its_interval_and_never_piles_up(
    tmp_path: Path, read_s: list[float], starts: list[float]
) -> None:
    """On simulated time (the clock jumps whenever everything sleeps): 2.9 s of polling at once."""
    from device.bridge import Bridge
    from device.store import AsyncStore

    clock = SimulatedClock()
    cfg = bridge_config(tmp_path, "/dev/null", 1)  # poll_interval_s 0.5; the broker is never reached
    inverter = TimedInverter(clock, read_s)
    bridge = Bridge(cfg, inverter, AsyncStore(cfg.db_path), clock=clock)  # type: ignore[arg-type]
    poller = asyncio.create_task(bridge._poll_loop())
    await clock.sleep(2.9)
    poller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await poller
    assert inverter.started == starts
    assert bridge.counters["polls"] == len(starts)  # each read done by 2.9 s, the next due after it


class RecordingInverter:
    """A KOSTAL map that takes every control at once; records ``(seconds since start, mode)``."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.regmap = load_map("kostal_plenticore")
        self.clock = clock
        self.applied: list[tuple[float, str]] = []

    def validate(self, mode: str, params: dict[str, Any]) -> None:
        pass

    async def apply(self, mode: str, **params: Any) -> Any:
        from datetime import UTC, datetime

        self.applied.append((self.clock.monotonic() - 1000.0, mode))
        return datetime.now(UTC)


async def test_rewrites_follow_commands_lapses_and_refreshes_on_simulated_time(tmp_path: Path) -> None:
    """The rewrite loop sleeps until the next write is due or the control changes: a charge is
    written again every refresh_s (30 s); a lapsed watchdog stops that; a refresh makes the
    control alive again and rewrites resume when due; a new command restarts the count from its
    own write; self-consumption ends them. On a clock that jumps whenever everything sleeps."""
    from device.bridge import Bridge

    clock = SimulatedClock()
    cfg = bridge_config(tmp_path, "/dev/null", 1, watchdog_s=40)  # the broker is never reached
    inverter = RecordingInverter(clock)
    bridge = Bridge(cfg, inverter, None, clock=clock)  # type: ignore[arg-type]
    rewriter = asyncio.create_task(bridge._rewrite_loop())
    try:
        await settle()  # the loop waits: nothing commanded yet
        await bridge.execute("charge", {"power_w": 1000})  # at 0: rewrites due at 30, lapses at 40
        await clock.sleep(70)  # at 60 the rewrite finds the watchdog lapsed: none, and none due
        assert bridge.watchdog.lapsed  # the watchdog loop (not running here) would have gone safe
        await bridge.execute("refresh", {})  # at 70: alive again, and the write due since 60 goes out
        await clock.sleep(15)
        await bridge.execute("discharge", {"power_w": 500})  # at 85: the next write due at 115
        await clock.sleep(35)
        await bridge.execute("self_consumption", {})  # at 120
        await clock.sleep(100)
    finally:
        rewriter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rewriter
        bridge.update_lock.release()
    assert inverter.applied == [(0, "charge"), (30, "charge"), (70, "charge"), (85, "discharge"),
                                (115, "discharge"), (120, "self_consumption")]
    assert bridge.counters["control_rewrites"] == 3
