"""The ``app`` service: everything that decides and shows, around one shared store.

Background jobs (store housekeeping, prices and their forecast, the planner with its controller
and settlement, the homeowner's settings, cloud sync) run beside the local web page until
``stop`` is set. A job that fails is logged and restarted with a capped backoff, so one broken
part (say, the price API) never takes the web page down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from device.config import Config, ConfigError
from device.modbus.registermap import load_map
from device.mqtt import MqttSession, NotConnected, Topics
from device.planner import ModeRequest
from device.planning import Planning, PlanningService, configured_mode
from device.prices.runtime import PricesApp
from device.store import AsyncStore, Retention
from device.web.server import web_server
from device.home.settings import SettingsFile, to_json

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[None]]
SETTINGS_POLL_S = 2.0


async def supervise(name: str, job: Job, *, backoff_max_s: float = 300.0) -> None:
    """Run ``job`` forever: restart it after a crash, waiting longer after each failure in a row."""
    delay = 1.0
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — keep the appliance up; the log says what broke
            if asyncio.get_running_loop().time() - started > 10 * delay:
                delay = 1.0  # it ran a good while: a fresh failure, not a crash loop
            log.error("task crashed; restarting", task=name, error=repr(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max_s)


class RetainedPublisher:
    """The app's own MQTT session for retained state (``prices``); re-sent after a broker restart."""

    def __init__(self, cfg: Config) -> None:
        self.topics = Topics(cfg.mqtt.prefix, cfg.device.id)
        self.session = MqttSession(cfg.mqtt, client_id=f"{cfg.device.id}-app", on_connect=self._resend)
        self._last: dict[str, Any] = {}

    async def publish(self, topic: str, payload: Any) -> None:
        self._last[topic] = payload
        with contextlib.suppress(NotConnected):
            await self.session.publish_json(topic, payload, retain=True, qos=1)

    async def publish_prices(self, payload: dict[str, Any]) -> None:
        await self.publish(self.topics.prices, payload)

    async def _resend(self) -> None:
        for topic, payload in self._last.items():
            await self.session.publish_json(topic, payload, retain=True, qos=1)


async def follow_home_settings(
    cfg: Config,
    settings: SettingsFile,
    planner: PlanningService,
    clock: Callable[[], float] = time.time,
    poll_s: float = SETTINGS_POLL_S,
) -> None:
    """Apply the homeowner's settings from the web page (mode, reserve, tariff, manual override)
    to the planner whenever they change, and return to the standing mode when an override ends."""
    applied: tuple[str, bool] | None = None
    while True:
        home = await settings.load()
        override = home.active_override(clock())
        state = (json.dumps(to_json(home), sort_keys=True), override is not None)
        if state != applied:
            try:
                effective = home.apply(cfg)
            except ConfigError as exc:  # the page validates; a hand-edited file may not be
                log.error("homeowner settings ignored", error=str(exc))
                effective = cfg
            request = (
                ModeRequest("manual", action=override.action, power_w=override.power_w, until=override.until)
                if override is not None
                else configured_mode(effective)
            )
            planner.reconfigure(effective, request)
            log.info("homeowner settings applied", mode=request.mode, action=request.action)
            applied = state
        await asyncio.sleep(poll_s)


class _StatsHealth:
    """A live ``stats`` dict as a :class:`device.web.deps.HealthSource`."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats

    def health(self) -> dict[str, Any]:
        return self.stats


def background_jobs(
    cfg: Config, store: AsyncStore, settings: SettingsFile
) -> tuple[dict[str, Job], dict[str, Any]]:
    """The app's background jobs by name, and the health sources they expose to the page."""
    retained = RetainedPublisher(cfg)
    prices = PricesApp(cfg, store, retained.publish_prices)
    planning = Planning(cfg, store)
    jobs: dict[str, Job] = {
        "housekeeping": store.housekeeping,
        "mqtt": retained.session.run,
        "prices": prices.run,
        "planning": planning.run,
        "home-settings": lambda: follow_home_settings(cfg, settings, planning.service),
    }
    health: dict[str, Any] = {"prices": prices, "planning": planning}
    if cfg.cloud.url:
        from device.sync import SyncClient

        syncer = SyncClient(cfg, store)
        jobs["sync"] = syncer.run
        health["sync"] = _StatsHealth(syncer.stats)
    return jobs, health


async def run_app(cfg: Config, stop: asyncio.Event) -> None:
    """Serve the page and run the background jobs until ``stop`` is set."""
    regmap = load_map(cfg.inverter.map)
    async with AsyncStore(cfg.db_path, Retention.from_settings(cfg.store)) as store:
        settings = SettingsFile.for_config(cfg)  # one instance: the page writes, the planner reads
        jobs, health = background_jobs(cfg, store, settings)
        tasks = [asyncio.create_task(supervise(name, job), name=name) for name, job in jobs.items()]
        try:
            async with web_server(cfg, store, regmap, health=health, settings=settings) as url:
                log.info("app running", url=url, jobs=sorted(jobs))
                await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
