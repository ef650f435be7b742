"""Every state change the page or the API can make: validated here, executed, logged as an event.

Forms and JSON handlers are thin wrappers around these functions so both refuse the same input
with the same message. Validation happens before anything reaches the bridge; the bridge checks
again (defence in depth), and its refusal is passed on verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from common.numbers import finite_float
from common.utc import parse_utc
from device.config import Config
from device.modbus.codec import EncodeError, encode_write
from device.modbus.mapmodel import Register, RegisterAccessError
from device.store import Store
from device.home import settings as home
from device.web.deps import CommandResult, WebDeps
from device.web.inputs import ActionError
from device.web.model import parse_clock

log = structlog.get_logger(__name__)
COMMAND_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Actor:
    """Who acts (for the event log) and where: the home's time zone and the configuration."""

    role: str
    cfg: Config
    deps: WebDeps

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.cfg.device.timezone)


async def log_event(actor: Actor, kind: str, message: str, data: Mapping[str, Any], level: str = "info") -> None:
    await actor.deps.store.call(Store.add_event, level, kind, message, {"by": actor.role, **data})
    log.info("web action", kind=kind, by=actor.role, level=level, **data)


async def _command(actor: Actor, action: str, args: Mapping[str, Any]) -> CommandResult:
    try:
        result = await actor.deps.commands.send(action, args, COMMAND_TIMEOUT_S)
    except TimeoutError as exc:
        await log_event(actor, "command", f"{action}: no answer from the bridge", {"action": action, **args}, "warning")
        raise ActionError(f"the inverter bridge did not answer within {COMMAND_TIMEOUT_S:g} s ({exc})", status=504) from None
    if not result.ok:
        await log_event(actor, "command", f"{action} refused: {result.error}", {"action": action, **args}, "warning")
        raise ActionError(f"the bridge refused {action}: {result.error}", status=502)
    return result


async def change_settings(actor: Actor, changes: Mapping[str, Any]) -> home.HomeSettings:
    """``{"planner": {"mode": ...}, "battery": {"reserve_pct": ...}, "tariff": {...}}``."""
    example = 'expected {"section": {"key": value}}, e.g. {"battery": {"reserve_pct": 20}}'
    if not isinstance(changes, Mapping):
        raise ActionError(f"body: {example}", "body")
    for section, values in changes.items():
        if not isinstance(values, Mapping):
            raise ActionError(f"{section}: got {values!r}, {example}", str(section))
    settings = actor.deps.settings

    def edit(current: home.HomeSettings) -> home.HomeSettings:
        updated = home.update_sections(current, settings.base, changes)
        if "planner" in changes and "mode" in changes["planner"]:
            updated = home.HomeSettings(updated.sections, None)  # a new mode ends a manual override
        return updated

    try:
        updated = await settings.change(edit)
    except home.SettingsError as exc:
        raise ActionError(str(exc), exc.field) from None
    await log_event(actor, "settings", "settings changed", {"changes": {k: dict(v) for k, v in changes.items()}})
    return updated


UNTIL_ALLOWED = "expected a local date and time YYYY-MM-DDTHH:MM, a local time HH:MM or ISO-8601 with offset"


def resolve_until(text: Any, tz: ZoneInfo, now: float) -> float:
    """``"18:30"`` → the next 18:30 local time; ISO-8601 with offset or ``Z`` is taken as it is."""
    if not isinstance(text, str) or not text:
        raise ActionError(f"until: got {text!r}, {UNTIL_ALLOWED}", "until")
    if len(text) <= 5:
        try:
            hour, minute = parse_clock(text, "until")
        except ValueError as exc:
            raise ActionError(str(exc), "until") from None
        local = datetime.fromtimestamp(now, tz)
        moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if moment.timestamp() <= now:
            moment = (moment + timedelta(days=1)).replace(hour=hour, minute=minute)
        return moment.timestamp()
    try:
        return parse_utc(text, naive=tz)
    except ValueError:
        raise ActionError(f"until: got {text!r}, {UNTIL_ALLOWED}", "until") from None


def power_limits(cfg: Config) -> dict[str, int]:
    return {
        "charge": min(cfg.inverter.max_charge_w, cfg.battery.max_charge_w),
        "discharge": min(cfg.inverter.max_discharge_w, cfg.battery.max_discharge_w),
    }


async def start_manual(actor: Actor, action: Any, power_w: Any, until: Any) -> home.Override:
    """Charge or discharge now at ``power_w`` until ``until``; the bridge holds it that long."""
    now = actor.deps.clock()
    if isinstance(power_w, bool):  # JSON true is not one watt
        raise ActionError(f"power_w: got {power_w!r}, expected a number of watts", "power_w")
    try:
        override = home.make_override(action, power_w, resolve_until(until, actor.tz, now), now, power_limits(actor.cfg))
    except home.SettingsError as exc:
        raise ActionError(str(exc), exc.field) from None
    hold_s = math.ceil(override.until - now)
    await _command(actor, override.action, {"power_w": override.power_w, "hold_s": hold_s})
    await actor.deps.settings.change(lambda current: home.HomeSettings(current.sections, override))
    await log_event(actor, "control", f"manual {override.action} at {override.power_w} W",
                    {"action": override.action, "power_w": override.power_w, "until": override.until})
    return override


async def stop_manual(actor: Actor) -> None:
    """End a manual override; the inverter returns to self-consumption until the plan's next step."""
    await _command(actor, "self_consumption", {})
    await actor.deps.settings.change(lambda current: home.HomeSettings(current.sections, None))
    await log_event(actor, "control", "manual operation ended", {"action": "self_consumption"})


def find_register(actor: Actor, name: Any, writing: bool) -> Register:
    try:
        return actor.deps.regmap.register(name, "write" if writing else "read")
    except RegisterAccessError as exc:
        raise ActionError(f"name: {exc}", "name", 404 if exc.unknown else 400) from None


async def read_register(actor: Actor, name: Any) -> dict[str, Any]:
    reg = find_register(actor, name, writing=False)
    result = await _command(actor, "read_register", {"name": reg.name})
    await log_event(actor, "register", f"read {reg.name}", {"name": reg.name, "value": result.data.get("value")})
    return {"name": reg.name, "value": result.data.get("value"), "unit": reg.unit}


def parse_value(reg: Register, value: Any) -> float:
    """A form's text (``12,5`` too) or a JSON number, checked against the register."""
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "."))
        except ValueError:
            raise ActionError(f"value: got {value!r}, expected a number", "value") from None
    number = finite_float(value)
    if number is None:
        raise ActionError(f"value: got {value!r}, expected a finite number", "value")
    try:
        encode_write(reg, number)
    except EncodeError as exc:
        raise ActionError(f"value: {exc}", "value") from None
    return number


async def write_register(actor: Actor, name: Any, value: Any) -> dict[str, Any]:
    reg = find_register(actor, name, writing=True)
    number = parse_value(reg, value)
    result = await _command(actor, "write_register", {"name": reg.name, "value": number})
    await log_event(actor, "register", f"wrote {number:g} to {reg.name}", {"name": reg.name, "value": number})
    return {"name": reg.name, "value": number, "unit": reg.unit, "applied_at": result.data.get("applied_at")}
