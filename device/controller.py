"""Executes the current plan through the bridge, slot by slot, over MQTT.

At every slot boundary (and whenever a new plan arrives) the controller sends the slot's
setpoint as ``cmd/<action>`` with ``{"id", "power_w"?, "hold_s"}``, waits for the matching
``cmd/result`` and then for telemetry that shows the bridge in that mode. A refused or
unanswered command is retried (``RETRIES`` times, growing pause); if it still fails the
controller falls back to ``self_consumption`` — the inverter's own safe mode — and tries the
plan again at the next boundary.

The bridge's watchdog returns the inverter to self-consumption when commands stop; so while a
forcing setpoint (charge, discharge, hold) is active, ``cmd/refresh`` goes out every third of the
watchdog time. Every command carries ``hold_s`` = time to the slot end plus a margin: if this
process dies, the bridge does not keep charging from the grid for long. ``self_consumption``
needs no refresh (it is the safe mode). A slot without an action (mode ``off``) sends
``self_consumption`` once and then leaves the inverter alone.

The current plan is published retained on ``plan`` so the web page and Home Assistant see it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from common.backoff import Backoff
from device.clock import SYSTEM_CLOCK, Clock, within
from device.commands import loads
from device.mqtt import CommandChannel, NotConnected, Topics
from device.plan.model import SLOT_S, Plan, Setpoint

log = structlog.get_logger(__name__)

RESULT_TIMEOUT_S = 10.0
TELEMETRY_TIMEOUT_S = 30.0
RETRIES = 2
RETRY_PAUSES = Backoff(0.5, 0.5 * 2 ** (RETRIES - 1))  # 0.5 s, 1 s
HOLD_MARGIN_S = 60.0
SAFE = Setpoint("self_consumption")

Publish = Callable[..., Awaitable[None]]


class CommandFailed(RuntimeError):
    """The bridge refused or did not answer a command."""


@dataclass
class ControllerStats:
    commands: int = 0
    failures: int = 0
    retries: int = 0
    fallbacks: int = 0
    refreshes: int = 0
    unverified: int = 0
    last_action: str | None = None
    last_power_w: int = 0
    last_applied_at: str | None = None
    last_error: str | None = None
    boundary_lag_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lags = self.boundary_lag_s[-96:]
        return {
            "commands": self.commands, "failures": self.failures, "retries": self.retries,
            "fallbacks": self.fallbacks, "refreshes": self.refreshes, "unverified": self.unverified,
            "last_action": self.last_action, "last_power_w": self.last_power_w,
            "last_applied_at": self.last_applied_at, "last_error": self.last_error,
            "boundary_lag_max_s": round(max(lags), 3) if lags else None,
        }


class Controller:
    """Turns the current :class:`Plan` into bridge commands.

    ``publish(topic, payload_dict, retain=..., qos=...)`` is the app's MQTT session
    (``MqttSession.publish_json``); the app routes ``cmd/result`` and ``telemetry`` messages to
    :meth:`on_message`.
    """

    def __init__(
        self,
        topics: Topics,
        publish: Publish,
        *,
        watchdog_s: float = 120.0,
        clock: Clock = SYSTEM_CLOCK,
        result_timeout_s: float = RESULT_TIMEOUT_S,
        telemetry_timeout_s: float = TELEMETRY_TIMEOUT_S,
    ) -> None:
        self.topics = topics
        self.publish = publish
        self.watchdog_s = watchdog_s
        self.clock = clock
        self.result_timeout_s = result_timeout_s
        self.telemetry_timeout_s = telemetry_timeout_s
        self.plan: Plan | None = None
        self.stats = ControllerStats()
        self.channel = CommandChannel(topics, publish, "ctl", clock.time)
        self._telemetry: asyncio.Condition = asyncio.Condition()
        self._last_telemetry: dict[str, Any] | None = None
        self._telemetry_seq = 0
        self._wake = asyncio.Event()
        self._active: Setpoint | None = None  # what the bridge is known to run
        self._active_slot: int | None = None
        self._given_up: tuple[int, Setpoint] | None = None

    # --- inputs --------------------------------------------------------------------------
    async def set_plan(self, plan: Plan) -> None:
        """Adopt a new plan: publish it (retained) and apply its current slot now."""
        self.plan = plan
        self._given_up = None
        with contextlib.suppress(NotConnected):
            await self.publish(self.topics.plan, plan.to_json(), retain=True, qos=1)
        self._wake.set()

    async def on_message(self, topic: str, payload: bytes) -> None:
        """Feed ``cmd/result`` and ``telemetry`` messages from the app's MQTT session."""
        if topic == self.topics.cmd_result:
            self.channel.on_result(payload)
        elif topic == self.topics.telemetry:
            try:
                data = loads(payload)
            except ValueError:
                return
            if not isinstance(data, dict):
                return
            async with self._telemetry:
                self._last_telemetry = data
                self._telemetry_seq += 1
                self._telemetry.notify_all()

    @property
    def telemetry(self) -> dict[str, Any] | None:
        return self._last_telemetry

    # --- loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Apply setpoints at slot boundaries and keep the watchdog fed; runs until cancelled."""
        while True:
            self._wake.clear()  # a plan arriving from here on wakes the next sleep at once
            now = self.clock.time()
            slot = int(now // SLOT_S) * SLOT_S
            wanted = self._wanted(now)
            retry = self._given_up != (slot, wanted)  # a failed setpoint waits for the next slot or plan
            if (self._active_slot != slot or wanted != self._active) and retry:
                await self._apply(wanted, slot, now)
            elif self._active is not None and self._active.action not in (None, SAFE.action):
                await self._refresh(slot)
            await self._sleep_until(slot + SLOT_S, self.watchdog_s / 3)

    def _wanted(self, now: float) -> Setpoint:
        setpoint = self.plan.setpoint_at(now) if self.plan is not None else None
        if setpoint is None or setpoint.action is None:
            return SAFE  # no plan, plan over, or mode off: the inverter's own mode
        return setpoint

    async def _sleep_until(self, boundary: float, refresh_every: float) -> None:
        delay = max(min(boundary - self.clock.time(), refresh_every), 0.0)
        with contextlib.suppress(TimeoutError):
            await within(self.clock, delay, self._wake.wait())

    async def _apply(self, setpoint: Setpoint, slot: int, now: float) -> None:
        if self._active_slot is not None and self._active_slot != slot:
            self.stats.boundary_lag_s.append(now - slot)  # how late after the boundary
        self._active_slot = slot
        for attempt in range(RETRIES + 1):
            try:
                await self.command(setpoint, slot)
                self._active = setpoint
                return
            except CommandFailed as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                log.warning("setpoint failed", action=setpoint.action, attempt=attempt + 1, error=str(exc))
                if attempt < RETRIES:
                    self.stats.retries += 1
                    await self.clock.sleep(RETRY_PAUSES.delay(attempt + 1))
        self._active = None
        self._given_up = (slot, setpoint)
        if setpoint != SAFE:
            self.stats.fallbacks += 1
            log.error("falling back to self_consumption", action=setpoint.action)
            with contextlib.suppress(CommandFailed):
                await self.command(SAFE, slot)
                self._active = SAFE

    async def command(self, setpoint: Setpoint, slot: int) -> dict[str, Any]:
        """Send one setpoint and wait for its result and for telemetry in that mode."""
        action: str = setpoint.action or "self_consumption"
        args: dict[str, Any] = {}
        if action in ("charge", "discharge"):
            args["power_w"] = setpoint.power_w
        if action != SAFE.action:
            args["hold_s"] = self._hold_s(slot)
        seen = self._telemetry_seq
        reply = await self._send(action, args)
        self.stats.commands += 1
        self.stats.last_action, self.stats.last_power_w = action, setpoint.power_w
        self.stats.last_applied_at = reply.get("applied_at")
        if not await self._telemetry_shows(action, seen):
            self.stats.unverified += 1
            log.warning("telemetry does not show the commanded mode", action=action)
        log.info("setpoint applied", action=action, power_w=setpoint.power_w)
        return reply

    async def _refresh(self, slot: int) -> None:
        try:
            await self._send("refresh", {"hold_s": self._hold_s(slot)})
            self.stats.refreshes += 1
        except CommandFailed as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            self._active = None  # re-apply the setpoint on the next round
            self._wake.set()

    def _hold_s(self, slot: int) -> float:
        return round(max(slot + SLOT_S - self.clock.time(), 0.0) + HOLD_MARGIN_S, 1)

    async def _send(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            reply = await self.channel.send(action, args, self.result_timeout_s)
        except NotConnected as exc:
            raise CommandFailed(f"{action}: MQTT not connected ({exc})") from None
        except TimeoutError:
            raise CommandFailed(f"{action}: no cmd/result within {self.result_timeout_s:g} s") from None
        if not reply.get("ok"):
            raise CommandFailed(f"{action}: {reply.get('error', 'refused')}")
        return reply

    async def _telemetry_shows(self, action: str, seen: int) -> bool:
        """Wait for telemetry newer than the command (``seen``) that reports the commanded mode."""
        deadline = self.clock.monotonic() + self.telemetry_timeout_s
        async with self._telemetry:
            while True:
                data = self._last_telemetry
                if self._telemetry_seq > seen and data is not None and data.get("mode") == action:
                    return True
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await within(self.clock, remaining, self._telemetry.wait())

    def health(self) -> dict[str, Any]:
        """Figures for ``health`` and the web page."""
        active = self._active
        return {
            **self.stats.as_dict(),
            "active_action": None if active is None else active.action,
            "active_power_w": None if active is None else active.power_w,
            "plan_created_at": None if self.plan is None else self.plan.created_at,
            "plan_slots": 0 if self.plan is None else len(self.plan.ts),
            "next_boundary_in_s": round(SLOT_S - self.clock.time() % SLOT_S, 1),
        }
