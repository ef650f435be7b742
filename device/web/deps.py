"""What the web layer needs from the rest of the appliance, as small protocols.

The web page never talks to the inverter, the broker or SQL itself: ``nattery app`` and
``nattery run --simulate`` build these objects and pass them to :func:`device.web.create_app`.
Tests pass real implementations (a real store file, :class:`device.web.bridge_link.BridgeLink`
on a real mosquitto). Units and signs are the project's: W, Wh, %, EUR/MWh, epoch seconds,
``grid_w > 0`` import, ``battery_w > 0`` discharge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from device.modbus.mapmodel import RegisterMap
from device.store import AsyncStore, Reading
from device.home.effective import EffectiveSettings


class TelemetrySource(Protocol):
    """Live telemetry from the bridge (``nattery/<id>/telemetry`` and ``status``)."""

    def latest(self) -> Reading | None:
        """The newest snapshot, or ``None`` before the first one arrived."""

    def online(self) -> bool | None:
        """The bridge's ``status`` (LWT): True online, False offline, None not yet known."""

    def listen(self, callback: Callable[[Reading], None]) -> Callable[[], None]:
        """Call ``callback`` (on the event loop) for every new snapshot; returns the unsubscribe."""


@dataclass(frozen=True)
class CommandResult:
    """The bridge's ``cmd/result``: ``ok``, ``error`` when refused, and any further fields."""

    ok: bool
    error: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class CommandSender(Protocol):
    """Sends ``cmd/<action>`` to the bridge and waits for the matching ``cmd/result``."""

    async def send(self, action: str, args: Mapping[str, Any], timeout_s: float = 10.0) -> CommandResult:
        """Raises ``TimeoutError`` when no result arrives in time (bridge or broker down)."""


class HealthSource(Protocol):
    """One part's figures for the installer view (bridge queue, sync lag, last price fetch …)."""

    def health(self) -> Mapping[str, Any]:
        """The latest figures; values are numbers, strings, booleans or nested mappings."""


@dataclass
class WebDeps:
    """Everything :func:`device.web.create_app` uses; the caller owns their lifetimes."""

    store: AsyncStore
    regmap: RegisterMap
    telemetry: TelemetrySource
    commands: CommandSender
    settings: EffectiveSettings
    health: Mapping[str, HealthSource] = field(default_factory=dict)
    clock: Callable[[], float] = time.time  # "now" of the pages (today, the current slot); tests inject
