"""The controller drives the simulated inverter through the real bridge over a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np

from device.clock import SYSTEM_CLOCK, Clock
from device.controller import Controller
from device.mqtt import MqttSession, Topics
from device.plan.model import SLOT_S, Plan, Setpoint
from tests.conftest import Broker, PtyPair, session_running
from tests.device.test_bridge import DEVICE, Rig, rig, until
from tests.simulated_clock import SimulatedClock


def make_plan(start: int, setpoints: list[Setpoint]) -> Plan:
    n = len(setpoints)
    zeros = np.zeros(n)
    return Plan(
        created_at=time.time(), reason="test", mode="auto", ts=start + SLOT_S * np.arange(n),
        import_w=zeros, export_w=zeros, charge_w=zeros, discharge_w=zeros, soc_pct=zeros,
        load_w=zeros, pv_w=zeros, import_price=zeros, export_price=zeros, setpoints=setpoints,
    )


@contextlib.asynccontextmanager
async def controlling(r: Rig, clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[Controller]:
    topics = Topics(r.cfg.mqtt.prefix, DEVICE)
    session = MqttSession(r.cfg.mqtt, client_id=f"{DEVICE}-app")
    ctl = Controller(topics, session.publish_json, watchdog_s=r.cfg.bridge.watchdog_s, clock=clock,
                     result_timeout_s=5, telemetry_timeout_s=10)
    for topic in (topics.cmd_result, topics.telemetry):
        session.route(topic, ctl.on_message)
    mqtt_task = asyncio.create_task(session.run())
    await session.connected.wait()
    task = asyncio.create_task(ctl.run())
    try:
        yield ctl
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await session.close(final_status=None)
        mqtt_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mqtt_task


async def run_until(r: Rig, ctl: Controller, clock: SimulatedClock, predicate: Callable[[], bool],
                    step_s: float = 1.0, limit_s: float = 60.0) -> None:
    """Move the appliance's clock (bridge and controller) on until ``predicate`` holds, ``step_s``
    at a time (at least a poll interval; well inside the watchdog times these tests use, so a
    refresh the controller sends in a step reaches the bridge before the watchdog would lapse).
    Each step waits for the telemetry it brings (the poll is real I/O), and
    no step is taken while a command of the controller's awaits its reply: the bridge judges the
    command's age and its watchdog on this clock, so real latency never counts as appliance time."""
    start = clock.monotonic()
    while not predicate():
        assert clock.monotonic() - start <= limit_s, f"not within {limit_s:g} s of the appliance's time"
        await until(lambda: not ctl.channel._pending)
        mark = len(r.mqtt.messages)
        await clock.advance(step_s)
        await r.mqtt.wait_for(f"nattery/{DEVICE}/telemetry", since=mark)


async def test_setpoints_reach_the_simulator_and_the_plan_is_published(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    """Bridge and controller on one simulated clock, moved by the test (see :func:`run_until`)."""
    clock = SimulatedClock(auto=False)
    async with rig(tmp_path, pty_pair, mosquitto, clock, watchdog_s=5) as r, controlling(r, clock) as ctl:
        slot = int(clock.time() // SLOT_S) * SLOT_S
        await ctl.set_plan(make_plan(slot, [Setpoint("charge", 3000), Setpoint("hold")]))
        await until(lambda: r.sim.mode == "charge" and abs(r.sim.mode_params["power_w"] - 3000) < 50)
        plan = await r.mqtt.wait_for(f"nattery/{DEVICE}/plan")
        assert plan["slots"][0]["action"] == "charge" and plan["slots"][0]["power_w"] == 3000
        await until(lambda: ctl.stats.commands >= 1 and ctl.stats.last_action == "charge")
        # the bridge watchdog (5 s) stays fed: still charging well after it would have lapsed
        fed_from = clock.monotonic()
        await run_until(r, ctl, clock, lambda: clock.monotonic() >= fed_from + 7)
        assert r.sim.mode == "charge"
        assert ctl.stats.refreshes >= 2
        mark = len(r.mqtt.messages)
        await run_until(r, ctl, clock, lambda: any(t == f"nattery/{DEVICE}/health" for t, _ in r.mqtt.messages[mark:]))
        health = await r.mqtt.wait_for(f"nattery/{DEVICE}/health", since=mark)
        assert health["watchdog"]["trips"] == 0
        # a new plan applies at once
        await ctl.set_plan(make_plan(slot, [Setpoint("discharge", 2000)]))
        await run_until(r, ctl, clock, lambda: r.sim.mode == "discharge" and ctl.stats.last_action == "discharge")
        await run_until(r, ctl, clock, lambda: ctl.health()["active_action"] == "discharge")  # verified or not
        assert ctl.stats.unverified == 0
        # mode off: back to the inverter's own self-consumption
        await ctl.set_plan(make_plan(slot, [Setpoint(None)]))
        await run_until(r, ctl, clock, lambda: r.sim.mode == "self_consumption")


async def test_the_next_slot_starts_within_five_seconds(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    # the appliance's clock (bridge and controller, simulated) 2 s before a slot boundary:
    # slot one charges, slot two discharges
    boundary = 1_767_225_600 + 40 * SLOT_S
    clock = SimulatedClock(start=boundary - 2.0, auto=False)
    async with rig(tmp_path, pty_pair, mosquitto, clock=clock) as r, controlling(r, clock=clock) as ctl:
        await ctl.set_plan(make_plan(boundary - SLOT_S, [Setpoint("charge", 2000), Setpoint("discharge", 1500)]))
        await run_until(r, ctl, clock,
                        lambda: r.sim.mode == "discharge" and abs(r.sim.mode_params["power_w"] - 1500) < 50)
        assert ctl.stats.boundary_lag_s and max(ctl.stats.boundary_lag_s) < 5.0


async def test_the_planning_job_drives_the_simulator_through_the_bridge(
    tmp_path: Path, pty_pair: PtyPair, mosquitto: Broker
) -> None:
    """Prices in the store → plan → controller → bridge → simulated inverter, all real."""
    from device.home.effective import EffectiveSettings
    from device.replanning import Planning
    from device.store import AsyncStore, Store

    async with rig(tmp_path, pty_pair, mosquitto) as r:
        now = time.time()
        hour = int(now // 3600) * 3600
        # paid to import this hour, very dear power afterwards: charge at full power now
        prices = [{"zone": "DE_LU", "ts": hour + 3600 * h, "resolution_s": 3600,
                   "price_eur_mwh": -500.0 if h < 1 else 600.0, "source": "csv", "fetched_at": now}
                  for h in range(12)]
        async with AsyncStore(r.cfg.db_path) as store:
            await store.call(lambda s: s.db.table("prices").insert_all(prices))  # type: ignore[arg-type]
            session = MqttSession(r.cfg.mqtt, client_id=f"{DEVICE}-app")
            planning = Planning(await EffectiveSettings.open(r.cfg), store, session)
            async with session_running(session):
                task = asyncio.create_task(planning.run())
                try:
                    await until(lambda: r.sim.mode == "charge", timeout=30)
                    await until(lambda: planning.controller.stats.last_action == "charge")
                    stored = await store.call(Store.latest_plan)
                    assert stored is not None and stored["slots"][0]["action"] == "charge"
                    plan = await r.mqtt.wait_for(f"nattery/{DEVICE}/plan")
                    assert plan["slots"][0]["action"] == "charge"
                    assert planning.health()["planner"]["replans"] >= 1
                finally:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


class StandInBridge:
    """Answers the controller's commands as the bridge does, on simulated time: every command it
    accepts is reported back in telemetry; a charge above ``max_power_w`` is refused with the
    bridge's message. ``sent`` lists ``(seconds since start, action, power_w, hold_s)``."""

    def __init__(self, clock: SimulatedClock, topics: Topics, max_power_w: float = 5000) -> None:
        self.clock = clock
        self.topics = topics
        self.max_power_w = max_power_w
        self.start = clock.time()
        self.sent: list[tuple[float, str, Any, Any]] = []
        self.controller: Controller | None = None

    async def publish(self, topic: str, payload: Any, **_: Any) -> None:
        if not topic.startswith(self.topics.cmd("")):
            return  # the plan
        assert self.controller is not None
        action = topic.rsplit("/", 1)[1]
        power_w = payload.get("power_w")
        self.sent.append((self.clock.time() - self.start, action, power_w, payload.get("hold_s")))
        reply: dict[str, Any] = {"id": payload["id"], "ok": True}
        if power_w is not None and power_w > self.max_power_w:
            reply = {**reply, "ok": False, "error": f"power_w: got {power_w:g}, allowed: 0 to {self.max_power_w:g}"}
        await self.controller.on_message(self.topics.cmd_result, json.dumps(reply).encode())
        if reply["ok"] and action != "refresh":
            await self.controller.on_message(self.topics.telemetry, json.dumps({"mode": action}).encode())


@contextlib.asynccontextmanager
async def simulated(start: float) -> AsyncIterator[tuple[Controller, StandInBridge, SimulatedClock]]:
    """A controller on a simulated clock (it jumps whenever everything sleeps) and its bridge."""
    clock = SimulatedClock(start=start)
    topics = Topics("nattery", DEVICE)
    bridge = StandInBridge(clock, topics)
    ctl = Controller(topics, bridge.publish, watchdog_s=120, clock=clock)
    bridge.controller = ctl
    task = asyncio.create_task(ctl.run())
    try:
        yield ctl, bridge, clock
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_on_simulated_time_refreshes_feed_the_watchdog_and_the_boundary_switches_the_setpoint() -> None:
    """The controller's own timing, on a clock that jumps whenever it sleeps: 150 s in no time.
    The bridge is a stand-in that accepts every command and reports the commanded mode."""
    boundary = 1_767_225_600 + 40 * SLOT_S
    async with simulated(boundary - 100) as (ctl, bridge, clock):
        await ctl.set_plan(make_plan(boundary - SLOT_S, [Setpoint("charge", 2000), Setpoint("discharge", 1500)]))
        await clock.sleep(150)
    # refresh every third of the watchdog time; the new setpoint at the boundary, not later
    assert [(t - 100, action, hold_s) for t, action, _, hold_s in bridge.sent] == [
        (-100, "charge", 160.0), (-60, "refresh", 120.0), (-20, "refresh", 80.0),
        (0, "discharge", 960.0), (40, "refresh", 920.0)]
    assert ctl.stats.boundary_lag_s == [0.0] and ctl.stats.unverified == 0


async def test_a_refused_setpoint_is_retried_then_falls_back_to_self_consumption() -> None:
    """A setpoint the bridge refuses is sent three times, 0.5 s then 1 s apart, then the inverter
    is left in its own mode until the next slot: no retry storm. On simulated time."""
    slot = 1_767_225_600 + 40 * SLOT_S
    async with simulated(slot) as (ctl, bridge, clock):
        await ctl.set_plan(make_plan(slot, [Setpoint("charge", 3000)]))
        await clock.sleep(10)
        assert ctl.health()["active_action"] == "charge"
        await ctl.set_plan(make_plan(slot, [Setpoint("charge", 99_999)]))  # beyond the inverter's limit
        await clock.sleep(SLOT_S - 20)  # the rest of the slot, refreshes due every 40 s included
        assert ctl.stats.fallbacks == 1 and ctl.stats.retries == 2
        assert "power_w: got 99999" in (ctl.stats.last_error or "")
        assert ctl.health()["active_action"] == "self_consumption"
        applied = [(t, action, power_w) for t, action, power_w, _ in bridge.sent]
        assert applied == [(0, "charge", 3000), (10, "charge", 99_999), (10.5, "charge", 99_999),
                           (11.5, "charge", 99_999), (11.5, "self_consumption", None)]
