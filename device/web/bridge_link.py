"""The web page's line to the bridge over MQTT: live telemetry, bridge status and health, commands.

Routes ``telemetry``, ``status``, ``health`` and ``cmd/result`` on the process's one
:class:`~device.mqtt.MqttSession` (whoever owns the session runs it); implements :class:`~device.web.deps.TelemetrySource`,
:class:`~device.web.deps.CommandSender` (through :class:`~device.mqtt.CommandChannel`, so
concurrent commands from several browsers never receive each other's answers) and
:class:`~device.web.deps.HealthSource`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from common.numbers import finite_float
from common.utc import parse_utc
from device.commands import loads
from device.mqtt import CommandChannel, MqttSession, NotConnected, Topics
from device.store import Reading
from device.web.deps import CommandResult
from device.web.inputs import nesting_depth

log = structlog.get_logger(__name__)


MAX_HEALTH_DEPTH = 16  # the bridge's health is three levels deep
#: Roles whose value is text; every other role and every register is a number.
TEXT_ROLES = ("state", "mode")


def parse_telemetry(payload: bytes) -> Reading:
    """The bridge's telemetry JSON → :class:`Reading` (roles at top level, ``registers`` nested).

    Raises ``TypeError`` when it is not a JSON object, ``ValueError`` or ``KeyError`` without an
    ISO ``ts``. A value of the wrong type (text where a number belongs, NaN, a list) becomes
    ``None``, "not read", so no page breaks on it.
    """
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise TypeError(f"telemetry: expected a JSON object, got {type(data).__name__}")
    ts = parse_utc(str(data.pop("ts")))
    registers = data.pop("registers", None)
    # state and mode are text although Reading.roles says numbers; the store keeps them apart too
    roles: dict[str, Any] = {
        key: (value if isinstance(value, str) else None) if key in TEXT_ROLES else finite_float(value)
        for key, value in data.items()
    }
    numbers = {name: finite_float(value) for name, value in registers.items()} if isinstance(registers, dict) else {}
    return Reading(ts=ts, roles=roles, registers=numbers)


class BridgeLink:
    """The bridge as the web page sees it, over ``session`` (the app's)."""

    def __init__(self, session: MqttSession, topics: Topics, clock: Callable[[], float] = time.time) -> None:
        self.topics = topics
        self.session = session
        for topic in (topics.telemetry, topics.status, topics.health, topics.cmd_result):
            session.route(topic, self._on_message)
        self._latest: Reading | None = None
        self._online: bool | None = None
        self._health: dict[str, Any] = {}
        self._listeners: list[Callable[[Reading], None]] = []
        self.commands = CommandChannel(topics, self.session.publish_json, "web", clock)

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        await asyncio.wait_for(self.session.connected.wait(), timeout_s)

    # --- TelemetrySource ---------------------------------------------------------------
    def latest(self) -> Reading | None:
        return self._latest

    def online(self) -> bool | None:
        return self._online

    def listen(self, callback: Callable[[Reading], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    # --- HealthSource ------------------------------------------------------------------
    def health(self) -> Mapping[str, Any]:
        return {
            "online": self._online, "mqtt_connected": self.session.connected.is_set(), **self._health,
            "link": {"handler_errors": self.session.handler_errors},
        }

    # --- CommandSender -----------------------------------------------------------------
    async def send(self, action: str, args: Mapping[str, Any], timeout_s: float = 10.0) -> CommandResult:
        try:
            reply = await self.commands.send(action, args, timeout_s)
        except NotConnected as exc:
            raise TimeoutError(f"MQTT broker not reachable ({exc})") from None
        extra = {k: v for k, v in reply.items() if k not in ("id", "ok", "error")}
        return CommandResult(bool(reply.get("ok")), reply.get("error"), extra)

    async def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            if topic == self.topics.telemetry:
                reading = parse_telemetry(payload)
                self._latest = reading
                for callback in list(self._listeners):
                    callback(reading)
            elif topic == self.topics.status:
                self._online = payload.strip() == b"online"
            elif topic == self.topics.health:
                health = loads(payload)
                if not isinstance(health, dict):
                    raise ValueError(f"health must be a JSON object, got {type(health).__name__}")
                if nesting_depth(health) > MAX_HEALTH_DEPTH:  # the installer page flattens it recursively
                    raise ValueError(f"health nests deeper than {MAX_HEALTH_DEPTH} levels")
                self._health = health
            elif topic == self.topics.cmd_result:
                self.commands.on_result(payload)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            log.warning("web: unreadable mqtt message", topic=topic, error=str(exc))

