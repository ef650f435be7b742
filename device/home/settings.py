"""The homeowner's runtime choices: mode, reserve, tariff, and a manual override until a time.

They are overrides of configuration keys (``planner.mode``, ``battery.reserve_pct``,
``tariff.*``) kept in ``<data_dir>/settings.json``, so everyone reads one effective
configuration: ``effective = settings.apply(cfg)`` (``Config.replace``, validated exactly like the
files, so a bad value is refused with the key, the value and what is allowed); in the app,
:class:`device.home.effective.EffectiveSettings` holds the result. The manual override
(charge/discharge at a power until a time) is not configuration; the planner reads it with
:meth:`HomeSettings.active_override`. Written atomically (temp file + rename), so a
power cut never leaves half a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from common.numbers import finite_float
from common.files import write_atomic
from device.commands import loads
from device.config import Config, ConfigError

log = structlog.get_logger(__name__)

#: Keys the homeowner may change at runtime, per configuration section.
EDITABLE: dict[str, tuple[str, ...]] = {
    "planner": ("mode",),
    "battery": ("reserve_pct",),
    "tariff": (
        "markup_eur_mwh", "grid_fee_eur_mwh", "levies_eur_mwh", "electricity_tax_eur_mwh",
        "vat_pct", "export", "feed_in_eur_mwh", "export_fee_eur_mwh",
    ),
}
SETTINGS_FILE = "settings.json"
OVERRIDE_ACTIONS = ("charge", "discharge")
MAX_OVERRIDE_S = 24 * 3600


class SettingsError(ValueError):
    """A value is not allowed; ``field`` names it (``section.key``) for the form and the API."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message if message.startswith(field_name) else f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Override:
    """Manual ``charge``/``discharge`` at ``power_w`` until ``until`` (epoch s)."""

    action: str
    power_w: int
    until: float


@dataclass(frozen=True)
class HomeSettings:
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    override: Override | None = None

    def apply(self, cfg: Config) -> Config:
        """The configuration with the homeowner's changes applied."""
        return cfg.replace(**self.sections) if self.sections else cfg

    def active_override(self, now: float) -> Override | None:
        return self.override if self.override is not None and self.override.until > now else None


def update_sections(
    current: HomeSettings, cfg: Config, changes: Mapping[str, Mapping[str, Any]]
) -> HomeSettings:
    """Merge ``{"battery": {"reserve_pct": 20}}``-style changes after validating them with the config."""
    sections = {name: dict(values) for name, values in current.sections.items()}
    for section, values in changes.items():
        allowed = EDITABLE.get(section)
        if allowed is None:
            raise SettingsError(section, f"cannot be changed here; allowed: {', '.join(EDITABLE)}")
        for key, value in values.items():
            if key not in allowed:
                raise SettingsError(f"{section}.{key}", f"cannot be changed here; allowed: {', '.join(allowed)}")
            sections.setdefault(section, {})[key] = value
    try:
        cfg.replace(**sections)
    except ConfigError as exc:
        text = str(exc)
        raise SettingsError(text.split(":", 1)[0], text) from None
    return dataclasses.replace(current, sections=sections)


def make_override(action: Any, power_w: Any, until: float, now: float, max_w: Mapping[str, int]) -> Override:
    """Validate a manual override; ``until`` is already resolved to epoch seconds."""
    if action not in OVERRIDE_ACTIONS:
        raise SettingsError("action", f"got {action!r}, allowed: {', '.join(OVERRIDE_ACTIONS)}")
    limit = max_w[action]
    try:
        if isinstance(power_w, bool):  # float(True) is 1.0: a 1 W charge nobody asked for
            raise TypeError(power_w)
        power = float(power_w)
    except (TypeError, ValueError):
        raise SettingsError("power_w", f"got {power_w!r}, expected a number of watts from 1 to {limit}") from None
    if not 1 <= power <= limit or power != int(power):
        raise SettingsError("power_w", f"got {power_w!r}, allowed: whole watts from 1 to {limit}")
    if not now < until <= now + MAX_OVERRIDE_S:
        raise SettingsError("until", "must be in the future and at most 24 hours ahead")
    return Override(str(action), int(power), until)


def to_json(settings: HomeSettings) -> dict[str, Any]:
    return {
        "sections": {k: dict(v) for k, v in settings.sections.items()},
        "override": dataclasses.asdict(settings.override) if settings.override else None,
    }


def from_json(data: Any) -> HomeSettings:
    """The settings as written by :func:`to_json`; raises :class:`SettingsError` naming what is wrong
    (the file may have been edited by hand). Section values are checked when applied."""
    if not isinstance(data, Mapping):
        raise SettingsError("settings", f"expected a JSON object, got {type(data).__name__}")
    sections = data.get("sections") or {}
    if not isinstance(sections, Mapping) or not all(isinstance(v, Mapping) for v in sections.values()):
        raise SettingsError("sections", "expected an object of objects, e.g. {\"battery\": {\"reserve_pct\": 20}}")
    return HomeSettings({k: dict(v) for k, v in sections.items()}, _override_from_json(data.get("override")))


def _override_from_json(raw: Any) -> Override | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"action", "power_w", "until"}:
        raise SettingsError("override", f"expected action, power_w and until, got {raw!r}")
    action, power_w, until = raw["action"], raw["power_w"], raw["until"]
    if action not in OVERRIDE_ACTIONS:
        raise SettingsError("override.action", f"got {action!r}, allowed: {', '.join(OVERRIDE_ACTIONS)}")
    if isinstance(power_w, bool) or not isinstance(power_w, int) or power_w < 1:
        raise SettingsError("override.power_w", f"got {power_w!r}, allowed: whole watts from 1")
    if finite_float(until) is None:
        raise SettingsError("override.until", f"got {until!r}, allowed: epoch seconds")
    return Override(action, power_w, float(until))


class SettingsFile:
    """``settings.json``: read, and replaced atomically. In the app only
    :class:`device.home.effective.EffectiveSettings` writes it (and serialises the writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> HomeSettings:
        return await asyncio.to_thread(self._read)

    async def save(self, settings: HomeSettings) -> None:
        await asyncio.to_thread(self._write, settings)

    def _read(self) -> HomeSettings:
        """The saved settings; a file that cannot be read as settings is moved aside (kept, and
        named in the log) and the configuration's values apply, instead of a crash at every start."""
        try:
            return from_json(loads(self.path.read_bytes()))
        except FileNotFoundError:
            return HomeSettings()
        except ValueError as exc:  # SettingsError, or not strict JSON (NaN, Infinity, garbage)
            kept = self.path.with_name(self.path.name + ".rejected")
            os.replace(self.path, kept)
            log.error("homeowner settings unreadable; configuration values apply", kept=str(kept), error=str(exc))
            return HomeSettings()

    def _write(self, settings: HomeSettings) -> None:
        write_atomic(self.path, json.dumps(to_json(settings), indent=2), mode=0o644)
