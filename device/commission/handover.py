"""Handing over: the installer file (inverter, tariff), and the homeowner's web password.

The inverter settings go in only when the inverter passed; tariff and password do not depend on
it. The installer file is validated as a whole with :func:`device.config.load` before it
replaces the old one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog
import yaml

from common.files import write_atomic
from device import config as configuration
from device.commission.report import CommissionError, Report, map_reference
from device.home.accounts import DEFAULT_PASSWORDS, MIN_PASSWORD_LEN, Users
from device.home.settings import SETTINGS_FILE, SettingsFile

log = structlog.get_logger(__name__)

INSTALLER_FILE_NAME = "nattery.yaml"  # in the data directory, as device.config.INSTALLER_FILE


def load_section(path: Path, name: str) -> dict[str, Any]:
    """A configuration section from a YAML file (``<name>: {...}`` or the keys alone), validated
    (``--tariff``, ``--market``). Keys left out take the shipped defaults, as in the installer file.
    """
    label = f"--{name} {path}"
    raw = configuration.read_yaml(path, CommissionError, label)
    if isinstance(raw, dict) and set(raw) == {name}:
        raw = raw[name]
    if not isinstance(raw, dict):
        raise CommissionError(f"{label}: expected a mapping of {name} settings, got {raw!r}")
    try:
        configuration.load([configuration.DEFAULT_FILE], environ={}, overrides={name: raw})
    except configuration.ConfigError as exc:
        raise CommissionError(f"{label}: {exc}") from None
    return raw


def check_password(password: str) -> None:
    """The rules the web page applies to a new password, checked before anything else runs."""
    if len(password) < MIN_PASSWORD_LEN:
        raise CommissionError(f"homeowner password: at least {MIN_PASSWORD_LEN} characters")
    if password in DEFAULT_PASSWORDS.values():
        raise CommissionError("homeowner password: choose one that is not a documented default")


def update_installer_file(
    path: Path, sections: Mapping[str, Mapping[str, Any]], replace: Iterable[str] = ()
) -> None:
    """Merge ``sections`` into the installer file; sections in ``replace`` are written whole.

    The result is validated with :func:`device.config.load` (defaults + this file, no
    environment) before it replaces the old file; the old one is kept as ``<name>.bak``
    (YAML comments do not survive the rewrite). Blocking: call through ``asyncio.to_thread``.
    """
    try:
        existing = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, yaml.YAMLError) as exc:
        raise CommissionError(f"{path}: cannot read the installer file: {exc}") from None
    existing = existing or {}
    if not isinstance(existing, dict):
        raise CommissionError(f"{path}: expected a mapping of sections, got {type(existing).__name__}")
    whole = set(replace)
    for name, values in sections.items():
        if name in whole or not isinstance(existing.get(name), dict):
            existing[name] = dict(values)
        else:
            existing[name].update(values)
    text = ("# Installer configuration (overrides the shipped defaults); updated by `nattery commission`.\n"
            + yaml.safe_dump(existing, sort_keys=False, allow_unicode=True))

    def valid_then_backup(tmp: Path) -> None:
        try:
            configuration.load([configuration.DEFAULT_FILE, tmp], environ={})
        except configuration.ConfigError as exc:
            raise CommissionError(f"{path}: not written, the result would be invalid: {exc}") from None
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))

    write_atomic(path, text, check=valid_then_backup)  # owner-only: may hold credentials


async def set_homeowner_password(cfg: configuration.Config, data_dir: Path, password: str) -> Path:
    """Store the homeowner's password in the appliance's accounts file (seeding it if new).

    The app reads the file when it starts: a running app sees the password after a restart.
    """
    check_password(password)
    users = Users.for_config(cfg, data_dir)
    await users.load()
    await users.set_password("homeowner", password)
    log.info("commission_homeowner_password_set", path=str(users.path))
    return users.path


async def drop_tariff_overrides(data_dir: Path) -> list[str]:
    """Remove tariff keys the homeowner changed on the web page, so the new tariff counts."""
    settings_file = SettingsFile(data_dir / SETTINGS_FILE)
    current = await settings_file.load()
    dropped = sorted(current.sections.get("tariff", {}))
    if dropped:
        sections = {k: v for k, v in current.sections.items() if k != "tariff"}
        await settings_file.save(dataclasses.replace(current, sections=sections))
    return dropped


async def hand_over(
    report: Report,
    cfg: configuration.Config,
    *,
    data_dir: Path,
    installer_file: Path,
    write_config: bool = False,
    tariff: Mapping[str, Any] | None = None,
    market: Mapping[str, Any] | None = None,
    password: str | None = None,
) -> None:
    """Write what the homeowner's device needs; notes go to ``report.files``, failures to problems.

    The inverter settings are written only when the inverter passed; tariff and password do not
    depend on it.
    """
    sections: dict[str, Mapping[str, Any]] = {}
    if write_config:
        found = report.found
        if found is None or not report.ok:
            report.files["inverter"] = "not written: commissioning of the inverter failed"
        else:
            baud = found.line.baudrate
            sections["inverter"] = {
                "map": map_reference(found.regmap), "port": report.port, "unit_id": found.unit_id,
                "baudrate": None if baud == found.map_baudrate else baud}
    if tariff is not None:
        sections["tariff"] = dict(tariff)
    if market is not None:
        sections["market"] = dict(market)
    if sections:
        try:
            await asyncio.to_thread(update_installer_file, installer_file, sections, {"tariff", "market"})
        except CommissionError as exc:
            report.problems.append(f"files: {exc}")
        else:
            if "inverter" in sections:
                report.files["inverter"] = f"written to {installer_file}: " + ", ".join(
                    f"inverter.{k}={v}" for k, v in sections["inverter"].items() if v is not None)
            if market is not None:
                report.files["market"] = f"written to {installer_file}: " + ", ".join(
                    f"market.{k}={v}" for k, v in market.items())
            if tariff is not None:
                report.files["tariff"] = f"written to {installer_file} ({len(tariff)} settings)"
                dropped = await drop_tariff_overrides(data_dir)
                if dropped:
                    report.files["tariff"] += "; removed the homeowner's web overrides of " + ", ".join(dropped)
    if password is not None:
        path = await set_homeowner_password(cfg, data_dir, password)
        report.files["homeowner_password"] = f"set in {path} (the app reads it when it starts)"
