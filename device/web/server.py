"""Serving the page inside ``nattery app`` / ``nattery run``: one call for the process composer.

    async with web_server(cfg, store, regmap, settings, session, health={"sync": syncer}) as url:
        ...  # serve until stopped

It routes a :class:`~device.web.bridge_link.BridgeLink` on the app's MQTT session (live
telemetry, bridge status and health, commands), builds the app and serves it on
``cfg.web.host``/``cfg.web.port`` (port 0 picks a free one; ``url`` says which).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import AsyncIterator, Mapping

import structlog
from aiohttp import web

from device.config import Config, ConfigError
from device.home.effective import EffectiveSettings
from device.modbus.mapmodel import RegisterMap
from device.mqtt import MqttSession, Topics
from device.store import AsyncStore
from device.clock import SYSTEM_CLOCK, Clock
from device.web.app import create_app
from device.web.bridge_link import BridgeLink
from device.web.deps import HealthSource, WebDeps

log = structlog.get_logger(__name__)


def web_deps(
    cfg: Config, store: AsyncStore, regmap: RegisterMap, link: BridgeLink,
    settings: EffectiveSettings, health: Mapping[str, HealthSource] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> WebDeps:
    return WebDeps(
        store=store, regmap=regmap, telemetry=link, commands=link,
        settings=settings, health={"bridge": link, **(health or {})}, clock=clock.time,
    )


@contextlib.asynccontextmanager
async def web_server(
    cfg: Config, store: AsyncStore, regmap: RegisterMap, settings: EffectiveSettings, session: MqttSession,
    health: Mapping[str, HealthSource] | None = None, link: BridgeLink | None = None, clock: Clock = SYSTEM_CLOCK,
) -> AsyncIterator[str]:
    """Serve the page until the block exits; yields the URL it listens on.

    ``settings`` is the effective configuration shared with the planner and settlement in the same
    process: a change on the page reaches them at once, without a restart. ``session`` is the
    app's MQTT session; the caller runs it. ``link``: the app's own line to the bridge, when
    other parts of the app listen to it too. ``clock``: the appliance's time (a demo's runs faster).
    """
    link = link or BridgeLink(session, Topics(cfg.mqtt.prefix, cfg.device.id))
    deps = web_deps(cfg, store, regmap, link, settings, health, clock)
    runner = web.AppRunner(create_app(cfg, deps), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, cfg.web.host, cfg.web.port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"web.port: port {cfg.web.port} on {cfg.web.host} is in use by another program; stop it or "
                f"choose another port (nattery run --port N, or web.port / NATTERY_WEB_PORT; 0 picks a free one)"
            ) from None
        host, port = runner.addresses[0][:2]
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        log.info("web page listening", url=url)
        yield url
    finally:
        await runner.cleanup()
