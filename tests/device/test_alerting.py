"""Every alert of the rule set raised and cleared on the device, on a driven clock: facts from
health sources the test sets, a real store file (the forecast error) and a real mosquitto
(the retained ``alerts`` list and the ``alerts/events``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import pytest

from common.utc import format_utc
from device import config as configuration
from device.alerting import DeviceAlerts
from device.clock_sync import clock_check, kernel_synchronised
from device.mqtt import MqttSession, Topics
from device.store import AsyncStore, Store
from tests.conftest import Broker, session_running

NOW = datetime(2026, 6, 1, 13, 0, tzinfo=UTC).timestamp()  # 15:00 in Berlin: past prices_late_after


class Figures:
    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures

    def health(self) -> dict[str, Any]:
        return self.figures


@dataclass
class Rig:
    alerts: DeviceAlerts
    sources: dict[str, Figures]
    store: AsyncStore
    received: list[tuple[str, Any]]
    now: list[float]
    disk: list[float]
    clock_ok: list[bool]

    async def check(self) -> set[tuple[str, str]]:
        return {(e["alert"], e["state"]) for e in await self.alerts.check()}


@pytest.fixture
async def rig(tmp_path: Path, mosquitto: Broker) -> AsyncIterator[Rig]:
    cfg = configuration.load([configuration.DEFAULT_FILE], environ={}, overrides={
        "device": {"id": "al1", "data_dir": str(tmp_path)}, "mqtt": {"host": "127.0.0.1", "port": mosquitto.port}})
    topics = Topics(cfg.mqtt.prefix, cfg.device.id)
    now, disk, clock_ok = [NOW], [0.5], [True]
    sources = {
        "bridge": Figures({"online": True, "inverter_online": True, "last_poll": format_utc(NOW), "polls": 10}),
        "prices": Figures({"tomorrow": "complete", "stale": False}),
        "planning": Figures({"controller": {"fallbacks": 0}}),
        "sync": Figures({"lag_s": 10.0}),
    }
    received: list[tuple[str, Any]] = []
    app = MqttSession(cfg.mqtt, client_id="al1-app")
    listener = MqttSession(cfg.mqtt, client_id="al1-listener")

    async def on_message(topic: str, payload: bytes) -> None:
        received.append((topic, json.loads(payload)))

    listener.route(f"{topics.alerts}/#", on_message)
    listener.route(topics.alerts, on_message)
    listener.route(f"{cfg.mqtt.discovery_prefix}/binary_sensor/#", on_message)
    async with AsyncStore(cfg.db_path) as store, session_running(app), session_running(listener):
        alerts = DeviceAlerts(cfg, store, sources, app, topics, clock=lambda: now[0],
                              clock_check=lambda t: clock_ok[0], disk_free=lambda path: disk[0])
        yield Rig(alerts, sources, store, received, now, disk, clock_ok)


async def test_a_healthy_device_has_no_alert(rig: Rig) -> None:
    assert await rig.check() == set()
    assert rig.alerts.health() == {"active": [], "recent": []}


def _set(rig: Rig, source: str, **figures: Any) -> None:
    rig.sources[source].figures = {**rig.sources[source].figures, **figures}


CASES: dict[str, tuple[Callable[[Rig], None], Callable[[Rig], None]]] = {
    "inverter_unreachable": (lambda r: _set(r, "bridge", inverter_online=False),
                             lambda r: _set(r, "bridge", inverter_online=True)),
    "prices_late": (lambda r: _set(r, "prices", tomorrow="missing"), lambda r: _set(r, "prices", tomorrow="complete")),
    "data_gap": (lambda r: _set(r, "bridge", last_poll=format_utc(r.now[0] - 1000)),
                 lambda r: _set(r, "bridge", last_poll=format_utc(r.now[0] - 5))),
    "sync_lag": (lambda r: _set(r, "sync", lag_s=7200.0), lambda r: _set(r, "sync", lag_s=30.0)),
    "disk_nearly_full": (lambda r: r.disk.__setitem__(0, 0.04), lambda r: r.disk.__setitem__(0, 0.3)),
    "clock_unsynchronised": (lambda r: r.clock_ok.__setitem__(0, False), lambda r: r.clock_ok.__setitem__(0, True)),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_each_alert_is_raised_and_cleared(rig: Rig, name: str) -> None:
    raise_it, clear_it = CASES[name]
    assert await rig.check() == set()
    raise_it(rig)
    rig.now[0] += 60
    assert await rig.check() == {(name, "raised")}
    assert await rig.check() == set()  # raised once, not at every evaluation
    assert [a["alert"] for a in rig.alerts.health()["active"]] == [name]
    clear_it(rig)
    rig.now[0] += 60
    assert await rig.check() == {(name, "cleared")}
    assert rig.alerts.health()["active"] == []
    events = await rig.store.call(Store.events, 10)
    assert {e["kind"] for e in events} >= {"alert_raised", "alert_cleared"}


async def test_controller_fallback_is_raised_and_clears_an_hour_later(rig: Rig) -> None:
    assert await rig.check() == set()  # 0 fallbacks seen: nothing
    _set(rig, "planning", controller={"fallbacks": 1})
    rig.now[0] += 60
    assert await rig.check() == {("controller_fallback", "raised")}
    rig.now[0] += 3000
    _set(rig, "bridge", last_poll=format_utc(rig.now[0]))  # the bridge keeps polling
    assert await rig.check() == set()
    rig.now[0] += 700  # an hour without another fallback
    _set(rig, "bridge", last_poll=format_utc(rig.now[0]))
    assert await rig.check() == {("controller_fallback", "cleared")}


async def test_forecast_drift_is_raised_and_cleared(rig: Rig) -> None:
    zone, now = "DE_LU", int(rig.now[0]) // 900 * 900
    week = range(now - 7 * 86_400, now, 900)
    await rig.store.call(Store.upsert_prices, zone, [(ts, 100.0) for ts in week], 900, "entsoe", now)
    await rig.store.call(Store.insert_forecast, "price", now - 8 * 86_400,
                         [(ts, 105.0 if ts < now - 86_400 else 140.0) for ts in week])
    assert await rig.check() == {("forecast_drift", "raised")}  # 40 on the last day, 10 over the week
    await rig.store.call(Store.insert_forecast, "price", now - 2 * 86_400,
                         [(ts, 104.0) for ts in range(now - 86_400, now, 900)])  # a better newer run
    rig.now[0] += 60
    assert await rig.check() == {("forecast_drift", "cleared")}


async def test_alerts_reach_mqtt_retained_and_as_events(rig: Rig) -> None:
    _set(rig, "sync", lag_s=9999.0)
    await rig.check()
    topics = rig.alerts.topics
    async with asyncio.timeout(10):
        while not any(t == topics.alert_events for t, _ in rig.received) or not any(
                t == topics.alerts and p["active"] for t, p in rig.received):
            await asyncio.sleep(0.02)
    event = next(p for t, p in rig.received if t == topics.alert_events)
    assert event["alert"] == "sync_lag" and event["state"] == "raised" and event["severity"] == "warning"
    listing = [p for t, p in rig.received if t == topics.alerts][-1]
    assert [a["alert"] for a in listing["active"]] == ["sync_lag"]


async def test_home_assistant_discovers_the_alerts_as_a_problem_sensor(rig: Rig) -> None:
    runner = asyncio.create_task(rig.alerts.run())
    try:
        async with asyncio.timeout(10):
            while not any("/binary_sensor/" in t for t, _ in rig.received):
                await asyncio.sleep(0.02)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    config = next(p for t, p in rig.received if "/binary_sensor/" in t)
    assert config["device_class"] == "problem" and config["state_topic"] == rig.alerts.topics.alerts
    template = jinja2.Environment().from_string(config["value_template"].replace("value_json", "v"))
    assert template.render(v={"active": [{"alert": "sync_lag"}]}) == "ON"
    assert template.render(v={"active": []}) == "OFF"


def test_the_clock_checks() -> None:
    floor, ntp = clock_check("floor"), clock_check("ntp", kernel=lambda: False)
    assert floor(NOW) and not floor(0.0)  # a Pi booting at 1970
    assert not ntp(NOW) and not ntp(0.0)  # the kernel says unsynchronised
    assert clock_check("ntp", kernel=lambda: True)(NOW)
    assert clock_check("ntp", kernel=lambda: None)(NOW)  # the kernel cannot be asked: the floor decides
    assert kernel_synchronised() in (True, False, None)  # the real adjtimex(2) answers without changing anything
    with pytest.raises(ValueError, match=r"device.clock_check: got 'gps', allowed: floor, ntp"):
        clock_check("gps")


async def test_the_inverter_is_not_called_unreachable_before_the_bridge_first_polled(rig: Rig) -> None:
    _set(rig, "bridge", inverter_online=False, polls=0, poll_failures=0)
    assert await rig.check() == set()
    _set(rig, "bridge", poll_failures=1)
    assert await rig.check() == {("inverter_unreachable", "raised")}
