"""A web app wired to real parts: a real store file, a real mosquitto, and a stand-in bridge
(the browser tests and the benchmark use the whole ``nattery run --simulate`` instead).

The stand-in speaks the bridge's MQTT protocol (telemetry, retained status and health, commands
with ``cmd/result``) over the real broker and moves a battery: charging raises the SoC. It lets
the web layer be tested on its own, through the same code path as on the device.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from device import config as configuration
from device.config import Config
from device.home.effective import EffectiveSettings
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import load_map
from common.utc import format_utc
from device.mqtt import MqttSession, Topics
from device.store import AsyncStore, Store
from device.web import create_app
from device.web.bridge_link import BridgeLink
from device.web.model import day_bounds
from device.web.server import web_deps
from tests.conftest import session_running


@dataclass
class StandInBridge:
    """Publishes telemetry every ``period_s`` and answers commands like the real bridge."""

    cfg: Config
    regmap: RegisterMap
    period_s: float = 0.3
    soc_pct: float = 50.0
    mode: str = "self_consumption"
    power_w: float = 0.0
    registers: dict[str, float] = field(default_factory=dict)
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)  # merged into each telemetry message, as sent

    def __post_init__(self) -> None:
        self.topics = Topics(self.cfg.mqtt.prefix, self.cfg.device.id)
        self.session = MqttSession(self.cfg.mqtt, client_id=f"{self.cfg.device.id}-standin-bridge",
                                   status_topic=self.topics.status)
        self.session.route(self.topics.cmd_all, self._on_message)
        for reg in self.regmap.registers.values():
            self.registers[reg.name] = reg.min if reg.min is not None else 0.0

    def roles(self, t: float) -> dict[str, Any]:
        pv = 3000.0 + 200 * ((t * 7) % 5)
        load = 800.0 + 100 * ((t * 3) % 4)
        battery = {"charge": -self.power_w, "discharge": self.power_w}.get(self.mode, min(0.0, load - pv))
        grid = load - pv - battery
        return {"soc_pct": round(self.soc_pct, 1), "pv_w": pv, "load_w": load, "battery_w": battery,
                "grid_w": grid, "state": "normal", "mode": self.mode}

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.session.run())
            group.create_task(self._telemetry())

    async def _telemetry(self) -> None:
        await self.session.connected.wait()
        await self.session.publish_json(self.topics.health, {"modbus": {"queue_depth": 0, "errors": 0},
                                                             "watchdog": {"mode": self.mode}}, retain=True)
        # Python 3.11's asyncio.wait_for (inside aiomqtt's publish) can lose a cancellation that
        # races a completed publish; the task still reports it, so the loop checks for it.
        task = asyncio.current_task()
        while task is None or not task.cancelling():
            now = time.time()
            roles = self.roles(now)
            self.soc_pct = min(100.0, max(0.0, self.soc_pct - roles["battery_w"] * self.period_s / 1000.0))
            self.registers["battery_soc"] = round(self.soc_pct)
            with contextlib.suppress(Exception):
                await self.session.publish_json(
                    self.topics.telemetry, {"ts": format_utc(now), **roles, "registers": dict(self.registers), **self.extra})
            await asyncio.sleep(self.period_s)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        action = self.topics.action_of(topic)
        if action is None:
            return
        message = json.loads(payload)
        command_id = message.pop("id")
        self.commands.append((action, message))
        reply: dict[str, Any] = {"id": command_id, "ok": True}
        if action in self.refuse:
            reply = {"id": command_id, "ok": False, "error": f"{action}: refused by the stand-in"}
        elif action in ("charge", "discharge", "self_consumption", "hold"):
            self.mode, self.power_w = action, float(message.get("power_w", 0))
            reply["applied_at"] = format_utc()
        elif action == "read_register":
            reply.update(name=message["name"], value=self.registers.get(message["name"]))
        elif action == "write_register":
            self.registers[message["name"]] = message["value"]
            reply.update(name=message["name"], value=message["value"], applied_at=format_utc())
        await self.session.publish_json(self.topics.cmd_result, reply, qos=1)


def web_config(data_dir: Path, mqtt_port: int, **web: Any) -> Config:
    """The app's configuration on ``data_dir``; the device id is made from the directory's name,
    so stacks on different directories keep apart on a broker they share (topics, retained
    messages), and one on the same directory, restarted, is the same device again."""
    return configuration.load([configuration.DEFAULT_FILE], environ={}, overrides={
        "device": {"data_dir": str(data_dir), "id": f"webtest-{data_dir.name}"},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "web": {"host": "127.0.0.1", "port": 0, **web},
    })


@dataclass
class WebStack:
    cfg: Config
    app: web.Application
    bridge: StandInBridge
    link: BridgeLink
    store: AsyncStore
    settings: EffectiveSettings


@functools.cache
def register_map(name: str) -> RegisterMap:
    """The register map ``name`` (a shipped one's name or a path), read once per test process:
    a map is immutable, and parsing its YAML cost each stack about 70 ms of CPU."""
    return load_map(name)


@contextlib.asynccontextmanager
async def web_stack(cfg: Config) -> AsyncIterator[WebStack]:
    """Store + bridge link + stand-in bridge + the app, for aiohttp's test client."""
    regmap = register_map(cfg.inverter.map)
    bridge = StandInBridge(cfg, regmap)
    bridge_task = asyncio.create_task(bridge.run())
    try:
        session = MqttSession(cfg.mqtt, client_id=f"{cfg.device.id}-app")
        link = BridgeLink(session, bridge.topics)
        async with AsyncStore(cfg.db_path) as store, session_running(session):
            settings = await EffectiveSettings.open(cfg)
            app = create_app(cfg, web_deps(cfg, store, regmap, link, settings))
            yield WebStack(cfg, app, bridge, link, store, settings)
    finally:
        bridge_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await bridge_task

def seed_history(store: Store, tz: ZoneInfo, now: float, tomorrow_known: bool = False) -> None:
    """Realistic page data: today's day-ahead prices (tomorrow's too when ``tomorrow_known``),
    a price forecast, a plan over both days and metered, settled slots for the month so far."""
    today = datetime.fromtimestamp(now, tz).date()
    start, _ = day_bounds(today, tz)
    _, end = day_bounds(today + timedelta(days=1), tz)
    tomorrow = day_bounds(today + timedelta(days=1), tz)[0]

    def price(ts: int) -> float:  # a duck curve: cheap at noon, dear in the evening (EUR/MWh)
        hour = datetime.fromtimestamp(ts, tz).hour + datetime.fromtimestamp(ts, tz).minute / 60
        return round(95 + 60 * math.cos((hour - 19) / 24 * 2 * math.pi) - 40 * math.exp(-((hour - 13) ** 2) / 8), 2)

    known_until = end if tomorrow_known else tomorrow
    store.db.table("prices").insert_all(
        [{"zone": "DE_LU", "ts": ts, "resolution_s": 900, "price_eur_mwh": price(ts), "source": "entsoe",
          "fetched_at": now} for ts in range(start, known_until, 900)], replace=True)
    store.db.table("forecasts").insert_all(
        [{"kind": "price", "made_at": int(now), "ts": ts, "value": price(ts) * 1.05, "lower": None, "upper": None}
         for ts in range(tomorrow, end, 900)], replace=True)
    soc, slots = 40.0, []
    for ts in range(start, end, 900):
        charge = 3000 if price(ts) < 70 else 0
        discharge = 2500 if price(ts) > 140 and soc > 15 else 0
        soc = min(100.0, max(10.0, soc + (charge - discharge) * 0.25 / 100))
        slots.append({"ts": ts, "charge_w": charge, "discharge_w": discharge, "soc_pct": round(soc, 2),
                      "action": "charge" if charge else "discharge" if discharge else "self_consumption"})
    store.insert_plan(now, "prices", {"slots": slots})
    month_start = day_bounds(today.replace(day=1), tz)[0]
    rows = [{"ts": ts, "import_wh": 150.0, "export_wh": 60.0, "import_price": 300.0, "export_price": 79.4,
             "cost_eur": 0.045, "revenue_eur": 0.0048, "cost_no_battery_eur": 0.07, "cost_self_consumption_eur": 0.055}
            for ts in range(month_start, int(now) - 900, 900)]
    store.save_settlements(rows, today.isoformat(), {}, now)
    store.db.table("energy_slots").insert_all(  # the metered quarter-hours those settlements came from
        [{"ts": r["ts"], "import_wh": 150.0, "export_wh": 60.0, "charge_wh": 80.0, "discharge_wh": 70.0,
          "pv_wh": 200.0 if 8 <= datetime.fromtimestamp(r["ts"], tz).hour < 18 else 0.0, "load_wh": 300.0,
          "samples": 90, "covered_s": 900.0, "complete": 1, "source": "power", "updated_at": now} for r in rows],
        replace=True)
