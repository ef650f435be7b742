"""The device's alerts: the facts of :mod:`common.alerts` gathered from the app's health, the
store and the disk, evaluated every ``bridge.health_interval_s``.

The active list is retained on MQTT ``alerts`` (``{"ts", "active": [...]}``), each change is an
event on ``alerts/events`` and in the store's event log (the installer's page), Home Assistant
gets a "problem" binary sensor for it, and the web page shows a banner from :meth:`health`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from common.alerts import AlertBook
from common.utc import format_utc
from device.clock_sync import clock_plausible
from device.config import Config
from device.home_assistant_discovery import alert_discovery
from device.metrics import timestamp
from device.mqtt import MqttSession, NotConnected, Topics
from device.store import AsyncStore, Store
from device.web.model import parse_clock

log = structlog.get_logger(__name__)

DAY_S = 86_400


@dataclass
class CounterWatch:
    """When a counter last went up (on the clock of :meth:`seen`)."""

    value: float | None = None
    rose_at: float | None = None

    def seen(self, value: Any, now: float) -> float | None:
        """Seconds since the counter last rose (``inf`` if never seen rising, None if unknown)."""
        if not isinstance(value, (int, float)):
            return None
        if self.value is not None and value > self.value:
            self.rose_at = now
        self.value = float(value)
        return float("inf") if self.rose_at is None else now - self.rose_at


def _section(health: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = health.get(key)
    return value if isinstance(value, Mapping) else {}


def prices_tomorrow_late(prices: Mapping[str, Any], now: float, tz: ZoneInfo, late_after: tuple[int, int]) -> bool | None:
    """Tomorrow's prices still not complete after ``late_after`` local time (None: not known)."""
    tomorrow = prices.get("tomorrow")
    if not isinstance(tomorrow, str):
        return None
    local = datetime.fromtimestamp(now, tz)
    return tomorrow != "complete" and (local.hour, local.minute) >= late_after


@dataclass
class DeviceAlerts:
    """Evaluates the rules on the app's health sources (``bridge`` included) and publishes."""

    cfg: Config
    store: AsyncStore
    sources: Mapping[str, Any]
    session: MqttSession
    topics: Topics
    clock: Callable[[], float] = time.time
    clock_check: Callable[[float], bool] = clock_plausible
    disk_free: Callable[[Path], float | None] = field(default=lambda path: _free_fraction(path))
    book: AlertBook = field(default_factory=AlertBook)
    recent: list[dict[str, Any]] = field(default_factory=list)
    fallbacks: CounterWatch = field(default_factory=CounterWatch)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(self.cfg.device.timezone)
        self.late_after = parse_clock(self.cfg.web.prices_late_after, "web.prices_late_after")

    async def facts(self, now: float) -> dict[str, Any]:
        health = {name: dict(source.health()) for name, source in self.sources.items() if name != "alerts"}
        bridge, prices = health.get("bridge", {}), health.get("prices", {})
        online, reachable = bridge.get("online"), bridge.get("inverter_online")
        if not bridge.get("polls") and not bridge.get("poll_failures"):
            reachable = None  # the bridge has not tried yet (it starts with the safe mode): not known
        last_poll = timestamp(bridge.get("last_poll"))
        controller = _section(_section(health, "planning"), "controller")
        day = await self.store.call(Store.price_forecast_error, self.cfg.prices.zone, int(now) - DAY_S, int(now))
        week = await self.store.call(Store.price_forecast_error, self.cfg.prices.zone, int(now) - 7 * DAY_S, int(now))
        free = await asyncio.to_thread(self.disk_free, self.cfg.db_path.parent)
        stale = prices.get("stale")
        return {
            "inverter_reachable": False if online is False else (None if reachable is None else bool(reachable)),
            "prices_tomorrow_late": prices_tomorrow_late(prices, now, self.tz, self.late_after),
            "prices_stale": None if stale is None else bool(stale),
            "data_age_s": None if last_poll is None else now - last_poll,
            "forecast_mae_day": day["mae_eur_mwh"], "forecast_slots_day": day["slots"],
            "forecast_mae_week": week["mae_eur_mwh"],
            "controller_fallback_ago_s": self.fallbacks.seen(controller.get("fallbacks"), now),
            "sync_lag_s": _section(health, "sync").get("lag_s"),
            "disk_free_fraction": free,
            "clock_synchronised": self.clock_check(now),
        }

    async def check(self) -> list[dict[str, Any]]:
        """One evaluation: publishes the events and the list; returns the events."""
        now = self.clock()
        events = self.book.evaluate(await self.facts(now), now)
        for event in events:
            raised = event["state"] == "raised"
            (log.warning if raised else log.info)("alert", **event)
            level = ("critical" if event["severity"] == "critical" else "warning") if raised else "info"
            await self.store.call(Store.add_event, level, f"alert_{event['state']}",
                                  f"{event['alert']}: {event['summary']}", event, now)
            with contextlib.suppress(NotConnected):
                await self.session.publish_json(self.topics.alert_events, event, qos=1)
        self.recent = (self.recent + events)[-10:]
        await self.session.publish_retained(self.topics.alerts, {"ts": format_utc(now), "active": self.book.listing()})
        return events

    async def run(self) -> None:
        """Evaluate every ``bridge.health_interval_s``, the first time one interval after the
        start, so the bridge's health and the first price fetch have arrived (no alert flaps
        up and down at every start)."""
        await self.session.publish_retained(*alert_discovery(self.cfg, self.topics))
        while True:
            await asyncio.sleep(self.cfg.bridge.health_interval_s)
            await self.check()

    def health(self) -> dict[str, Any]:
        """For the page: the active alerts and the latest changes."""
        return {"active": self.book.listing(), "recent": list(self.recent)}


def _free_fraction(path: Path) -> float | None:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return usage.free / usage.total if usage.total else None
