"""The ``app`` service: everything that decides and shows, around one shared store.

Background jobs (store housekeeping, prices and their forecast, the planner with its controller
and settlement, cloud sync, the health report) run beside the local web page until ``stop`` is
set. A job that fails is logged and restarted with a capped backoff, so one broken part (say, the
price API) never takes the web page down. All of them read one
:class:`~device.home.effective.EffectiveSettings` (what the homeowner changes on the page reaches
the planner and settlement at once) and share one :class:`~device.mqtt.MqttSession`. Their health
goes to the installer's page and, retained, to ``health/app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping
from typing import Any

import structlog

from common.utc import format_utc
from device.alerting import DeviceAlerts
from device.clock import SYSTEM_CLOCK, Clock
from device.clock_sync import clock_check
from device.config import Config
from device.home.effective import EffectiveSettings
from device.modbus.registermap import load_map
from device.mqtt import MqttSession, Topics
from device.prices.runtime import PricesApp
from device.replanning import Planning
from device.store import AsyncStore, Retention
from device.supervision import Job, TaskHealth, supervise
from device.web.bridge_link import BridgeLink
from device.web.deps import HealthSource
from device.web.server import web_server

log = structlog.get_logger(__name__)


class _StatsHealth:
    """A live ``stats`` dict as a :class:`device.web.deps.HealthSource`."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats

    def health(self) -> dict[str, Any]:
        return self.stats


async def publish_health(
    session: MqttSession, topic: str, sources: Mapping[str, HealthSource], interval_s: float
) -> None:
    """The app's health (prices' freshness, the planner's compromises, the controller's fallbacks,
    the sync backlog, the jobs' states) retained on ``topic`` every ``interval_s``."""
    while True:
        payload = {"ts": format_utc(), **{name: dict(source.health()) for name, source in sources.items()}}
        try:
            await session.publish_retained(topic, payload, qos=0)
        except (TypeError, ValueError) as exc:  # a figure JSON cannot carry: say so, keep going
            log.error("app health not published", error=str(exc)[:300])
        await asyncio.sleep(interval_s)


def background_jobs(
    store: AsyncStore, settings: EffectiveSettings, session: MqttSession, tasks: TaskHealth, link: BridgeLink,
    clock: Clock = SYSTEM_CLOCK,
) -> tuple[dict[str, Job], dict[str, Any]]:
    """The app's background jobs by name, and the health sources they expose to the page and
    publish on ``health/app`` (``tasks``: the jobs' own states, as :func:`supervise` records them;
    ``link``: the bridge as the app hears it, for the alerts). ``clock`` is the appliance's time:
    quarter-hours, plans, settlement and prices run on it; health reports and the sync's rounds,
    which people and networks wait for, on real time."""
    cfg = settings.config  # prices and sync use sections the homeowner does not change
    topics = Topics(cfg.mqtt.prefix, cfg.device.id)

    async def publish_prices(payload: dict[str, Any]) -> None:
        await session.publish_retained(topics.prices, payload)

    prices = PricesApp(cfg, store, publish_prices, clock=clock.time, sleep=clock.sleep)
    planning = Planning(settings, store, session, clock)
    jobs: dict[str, Job] = {
        "housekeeping": functools.partial(store.housekeeping, clock=clock),
        "mqtt": session.run,
        "prices": prices.run,
        "planning": planning.run,
    }
    health: dict[str, Any] = {"prices": prices, "planning": planning}
    if cfg.cloud.url:
        from device.sync import SyncClient

        syncer = SyncClient(cfg, store, clock=clock.time)
        jobs["sync"] = syncer.run
        health["sync"] = _StatsHealth(syncer.stats)
    health["tasks"] = tasks
    alerts = DeviceAlerts(cfg, store, {"bridge": link, **health}, session, topics, clock=clock.time,
                          clock_check=clock_check(cfg.device.clock_check))
    jobs["alerts"] = alerts.run
    health["alerts"] = alerts
    jobs["health"] = functools.partial(publish_health, session, topics.app_health, health, cfg.bridge.health_interval_s)
    return jobs, health


async def run_app(cfg: Config, stop: asyncio.Event, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """Serve the page and run the background jobs until ``stop`` is set (on ``clock``'s time)."""
    regmap = load_map(cfg.inverter.map)
    async with AsyncStore(cfg.db_path, Retention.from_settings(cfg.store)) as store:
        settings = await EffectiveSettings.open(cfg)  # one owner: the page writes, the rest read
        session = MqttSession(cfg.mqtt, client_id=f"{cfg.device.id}-app")  # the app's only one
        restarts = TaskHealth()
        link = BridgeLink(session, Topics(cfg.mqtt.prefix, cfg.device.id), clock.time)
        jobs, health = background_jobs(store, settings, session, restarts, link, clock)
        tasks = [asyncio.create_task(supervise(name, job, record=restarts), name=name) for name, job in jobs.items()]
        try:
            async with web_server(cfg, store, regmap, settings, session, health=health, link=link, clock=clock) as url:
                log.info("app running", url=url, jobs=sorted(jobs))
                await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
