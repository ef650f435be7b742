"""Commissioning: find the inverter on the bus, check it reads sensibly, prove a write is accepted.

What an installer does once per site, before handing over (``nattery commission``):

1. **Scan** the port: for each candidate map, line setting (the map's baud rate, parity, data and
   stop bits, or ``bauds``) and unit id, read the map's identifying registers (the ``soc_pct``
   and ``state`` roles) with a short timeout. Strictly one request at a time, through a
   :class:`~device.modbus.worker.ModbusWorker` per (line, unit) and never two workers at once:
   the firmware breaks under overlapping requests. A map *fits* when its identifying values all
   decode to plausible values; an exception reply means "something is there, but not this map".
2. **Check** every readable register of the chosen map (unit-based bands, enum values, the
   register's own limits) and the roles (SOC 0–100, counters non-negative, load ≈ pv + grid +
   battery).
3. **Harmless write**: write a setting back with the value it already has (verified by
   read-back), or apply ``self_consumption``, the mode every fallback uses.

4. **Hand over**: the found ``inverter.map``/``port``/``unit_id`` and the homeowner's tariff go
   into the installer file (validated with :func:`device.config.load` before it replaces the old
   one), the homeowner's password into the web page's users file.

Nothing here prints: the :class:`Report` is data, rendered as a table or JSON by the CLI.

One module of ~550 lines on purpose: the four steps share the report types and the plausibility
rules, and an installer reading why a value failed should find the rule next to the report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml

from device import config as configuration
from device.modbus.client import client_factory
from device.modbus.inverter import CommandError, Inverter, Limits, VerificationError
from device.modbus.registermap import Protocol, Register, RegisterMap
from device.modbus.worker import (
    MAX_RTU_ADU,
    ExceptionReply,
    LinkDown,
    ModbusError,
    ModbusWorker,
    RequestTimeout,
)
from device.web.auth import DEFAULT_PASSWORDS, MIN_PASSWORD_LEN, Account, Users, hash_password
from device.web.settings import SETTINGS_FILE, SettingsFile

log = structlog.get_logger(__name__)

Verdict = Literal["ok", "warn", "fail", "unchecked"]
Outcome = Literal["fits", "implausible", "exception", "no_reply", "error"]
IDENTITY_ROLES = ("soc_pct", "state")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
MAX_UNIT = 247
INSTALLER_FILE_NAME = "nattery.yaml"  # in the data directory, as device.config.INSTALLER_FILE
USERS_FILE_NAME = "web-users.json"  # as device/web/app.py opens it

# Plausibility bands: (low, high) ranges any of which is fine, by unit.
GRID_V = ((184.0, 264.5),)  # 230 V −20 %/+15 %
BATTERY_V = ((40.0, 60.0), (80.0, 1000.0))  # 48 V low-voltage bank, or a high-voltage stack
PV_V = ((0.0, 1000.0),)  # 0 at night; 1000 V is the residential string limit
FREQUENCY_HZ = ((47.5, 52.5), (57.0, 63.0))  # 50 Hz and 60 Hz grids
TEMPERATURE_C = ((-30.0, 90.0),)
CURRENT_A = ((-1000.0, 1000.0),)
POWER_W = ((-100_000.0, 100_000.0),)
# load ≈ pv + grid + battery: the inverter's own use, conversion losses and reading the blocks
# a few milliseconds apart leave a gap; more than this means a sign or a scale is wrong.
BALANCE_BASE_W = 150.0
BALANCE_SHARE = 0.10


class CommissionError(RuntimeError):
    """Commissioning cannot go on (port cannot be opened, bad option); the text says why."""


@dataclass(frozen=True)
class Line:
    """Serial character format and speed (on TCP only the timing depends on it)."""

    baudrate: int
    parity: str
    bytesize: int
    stopbits: int

    @classmethod
    def of(cls, protocol: Protocol, baudrate: int | None = None) -> Line:
        return cls(baudrate or protocol.baudrate, protocol.parity, protocol.bytesize, protocol.stopbits)

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


@dataclass(frozen=True)
class Probe:
    """One map tried at one line setting and unit id."""

    map: str
    unit_id: int
    line: Line
    outcome: Outcome
    detail: str
    values: dict[str, float | None] = field(default_factory=dict)

    @property
    def answered(self) -> bool:
        return self.outcome in ("fits", "implausible", "exception")


@dataclass(frozen=True)
class Found:
    """The identified inverter: its map with the line settings and unit id that answered."""

    regmap: RegisterMap
    line: Line
    unit_id: int
    map_baudrate: int  # what the map file declares: the config names a baud rate only if different
    also_fits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """A verdict on one register or one role rule."""

    name: str
    value: float | None
    unit: str
    verdict: Verdict
    reason: str = ""


@dataclass(frozen=True)
class WriteCheck:
    kind: Literal["rewrite", "self_consumption"]
    ok: bool
    detail: str
    registers: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """Everything commissioning found; ``problems`` lists what makes it fail."""

    port: str
    probes: list[Probe] = field(default_factory=list)
    found: Found | None = None
    registers: list[Check] = field(default_factory=list)
    roles: list[Check] = field(default_factory=list)
    write: WriteCheck | None = None
    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        found = self.found
        return {
            "ok": self.ok,
            "port": self.port,
            "problems": self.problems,
            "scan": [{**dataclasses.asdict(p), "line": str(p.line)} for p in self.probes],
            "found": None if found is None else {
                "map": map_reference(found.regmap), "unit_id": found.unit_id, "line": str(found.line),
                "baudrate": found.line.baudrate, "also_fits": list(found.also_fits)},
            "registers": [dataclasses.asdict(c) for c in self.registers],
            "roles": [dataclasses.asdict(c) for c in self.roles],
            "write": None if self.write is None else dataclasses.asdict(self.write),
            "files": self.files,
        }


def map_reference(regmap: RegisterMap) -> str:
    """What ``inverter.map`` must say to load this map: the family for shipped maps, else the path."""
    from device.modbus.registermap import MAPS_DIR

    return regmap.family if regmap.path.parent == MAPS_DIR and regmap.path.stem == regmap.family else str(regmap.path)


def parse_units(text: str) -> list[int]:
    """``"1-10"``, ``"1,3,5-7"`` → unit ids; raises ``ValueError`` naming what is allowed."""
    units: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"--scan-units: {text!r} is not a list of unit ids like 1-10 or 1,3,5-7") from None
        if not 1 <= first <= last <= MAX_UNIT:
            raise ValueError(f"--scan-units: {part.strip()!r} outside 1..{MAX_UNIT} (or range reversed)")
        units.extend(u for u in range(first, last + 1) if u not in units)
    return units


def parse_bauds(text: str) -> list[int]:
    """``"9600,19200"`` → baud rates; raises ``ValueError`` naming the allowed ones."""
    bauds = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) not in BAUDRATES:
            raise ValueError(f"--scan-bauds: got {part.strip()!r}; allowed: {', '.join(map(str, BAUDRATES))}")
        bauds.append(int(part))
    return bauds


# --- plausibility ----------------------------------------------------------------------------

def judge(regmap: RegisterMap, reg: Register, value: float | None) -> Check:
    """The verdict on one register value: its enum, its declared limits, then its unit's band."""
    def check(verdict: Verdict, reason: str = "") -> Check:
        return Check(reg.name, value, reg.unit, verdict, reason)

    if value is None:
        return check("fail", "not read (the block failed)")
    if not math.isfinite(value):
        return check("fail", "not a finite number")
    if reg.enum:
        label = reg.enum.get(int(value)) if value == int(value) else None
        if label is None:
            return check("fail", f"unknown code {value:g}; known: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(reg.enum.items())))
        return check("ok", label)
    if reg.min is not None and value < reg.min or reg.max is not None and value > reg.max:
        return check("fail", f"outside the register's range {reg.min:g}..{reg.max:g}"
                     if reg.min is not None and reg.max is not None else "outside the register's range")
    bands = _bands(regmap, reg)
    if bands is None:
        return check("ok" if reg.min is not None or reg.max is not None else "unchecked",
                     "within the register's range" if reg.min is not None or reg.max is not None else "")
    if any(lo <= value <= hi for lo, hi in bands):
        return check("ok")
    if value == 0 and reg.unit in ("V", "Hz") and _kind(reg) == "grid":
        return check("warn", "no grid? (0 is expected only off-grid or during a power cut)")
    shown = " or ".join(f"{lo:g}..{hi:g}" for lo, hi in bands)
    return check("fail", f"expected {shown} {reg.unit}")


def _kind(reg: Register) -> str:
    name = reg.name.lower()
    if "pv" in name:
        return "pv"
    if "bat" in name or "bms" in name:
        return "battery"
    return "grid"


def _non_negative(regmap: RegisterMap) -> set[str]:
    """Registers that alone (or summed with like terms) make ``pv_w`` or ``load_w``: never < 0."""
    names: set[str] = set()
    for role in ("pv_w", "load_w"):
        spec = regmap.roles.get(role)
        if spec is not None and all(factor > 0 for _, factor in spec.terms):
            names.update(spec.registers)
    return names


def _bands(regmap: RegisterMap, reg: Register) -> tuple[tuple[float, float], ...] | None:
    unit = reg.unit
    if unit == "%":
        return ((0.0, 100.0),)
    if unit == "V":
        return {"pv": PV_V, "battery": BATTERY_V}.get(_kind(reg), GRID_V)
    if unit == "Hz":
        return FREQUENCY_HZ
    if unit == "°C":
        return TEMPERATURE_C
    if unit == "Wh":
        return ((0.0, math.inf),)
    if unit == "A":
        return CURRENT_A
    if unit == "W":
        return ((0.0, POWER_W[0][1]),) if reg.name in _non_negative(regmap) else POWER_W
    return None


def judge_roles(regmap: RegisterMap, roles: dict[str, float | None]) -> list[Check]:
    """Role rules: SOC 0–100, pv/load ≥ 0, energy counters ≥ 0, and the power balance."""
    checks: list[Check] = []

    def add(name: str, value: float | None, unit: str, ok: bool, rule: str) -> None:
        verdict: Verdict = "ok" if ok and value is not None else "fail"
        checks.append(Check(name, value, unit, verdict, "not read" if value is None else rule))

    for role, value in roles.items():
        if role == "soc_pct":
            add(role, value, "%", value is not None and 0 <= value <= 100, "0..100 %")
        elif role in ("pv_w", "load_w"):
            add(role, value, "W", value is not None and value >= 0, "never below 0 W")
        elif role.startswith("energy_"):
            add(role, value, "Wh", value is not None and value >= 0, "a counter, never below 0")
    flows = [roles.get(r) for r in ("load_w", "pv_w", "grid_w", "battery_w")]
    if all(v is not None for v in flows):
        load, pv, grid, battery = (float(v) for v in flows if v is not None)
        supply = pv + grid + battery
        tolerance = BALANCE_BASE_W + BALANCE_SHARE * (abs(pv) + abs(grid) + abs(battery) + abs(load))
        ok = abs(load - supply) <= tolerance
        add("balance", round(load - supply, 1), "W", ok,
            f"load {load:g} W vs pv + grid + battery {supply:g} W, tolerance {tolerance:.0f} W"
            + ("" if ok else ": a sign or scale in the map is wrong, or a meter is missing"))
    else:
        add("balance", None, "W", False, "")
    return checks


# --- scan ------------------------------------------------------------------------------------

def _shown(c: Check) -> str:
    return f"{c.name} " + ("-" if c.value is None else f"{c.value:g}") + (f" {c.unit}" if c.unit else "")


def identity_registers(regmap: RegisterMap) -> list[str]:
    return [name for role in IDENTITY_ROLES if role in regmap.roles for name in regmap.roles[role].registers]


def _worker(port: str, protocol: Protocol, timeout_s: float, retries: int) -> ModbusWorker:
    return ModbusWorker(client_factory(port, protocol), protocol, port=port, timeout_s=timeout_s,
                        retries=retries, defective_after=1_000_000)


async def _probe(inverter: Inverter, line: Line, unit: int) -> Probe:
    regmap = inverter.regmap
    names = identity_registers(regmap)

    def probe(outcome: Outcome, detail: str, values: dict[str, float | None] | None = None) -> Probe:
        return Probe(map_reference(regmap), unit, line, outcome, detail, values or {})

    values: dict[str, float | None] = {}
    try:
        for name in names:  # one by one: the first silence or refusal ends the probe
            values.update(await inverter.read_registers([name]))
    except LinkDown as exc:
        raise CommissionError(f"cannot open {inverter.worker.port}: {exc}") from None
    except ExceptionReply as exc:
        return probe("exception", f"exception {exc.code} ({ExceptionReply.NAMES.get(exc.code, 'unknown')})")
    except RequestTimeout:
        return probe("no_reply", "no reply")
    except ModbusError as exc:
        return probe("error", str(exc))
    verdicts = [judge(regmap, regmap.registers[n], values[n]) for n in names]
    bad = [f"{_shown(c)}: {c.reason}" for c in verdicts if c.verdict == "fail"]
    shown = ", ".join(_shown(c) + (f" ({c.reason})" if c.reason and c.verdict == "ok" else "")
                      for c in verdicts)
    if bad:
        return probe("implausible", "answered, implausible: " + "; ".join(bad), values)
    return probe("fits", shown, values)


async def scan(
    port: str,
    maps: Sequence[RegisterMap],
    *,
    units: Sequence[int] | None = None,
    bauds: Sequence[int] | None = None,
    timeout_s: float = 0.5,
) -> list[Probe]:
    """Try every map at every line setting and unit id; one request on the line at a time.

    ``units`` default to each map's own unit id, ``bauds`` to each map's baud rate. A worker
    is made per (line, unit) (its protocol fixes both) and stopped before the next starts; after
    a timeout the line is left quiet for the longest late reply before the next worker speaks.
    Raises :class:`CommissionError` if the port cannot be opened.
    """
    groups: dict[tuple[Line, int], list[RegisterMap]] = {}
    for regmap in maps:
        for baud in bauds or [regmap.protocol.baudrate]:
            for unit in units or [regmap.protocol.unit_id]:
                groups.setdefault((Line.of(regmap.protocol, baud), unit), []).append(regmap)
    probes: list[Probe] = []
    for (line, unit), candidates in groups.items():
        protocol = dataclasses.replace(
            candidates[0].protocol, baudrate=line.baudrate, unit_id=unit, timeout_s=timeout_s,
            gap_s=max(m.protocol.gap_s for m in candidates))
        async with _worker(port, protocol, timeout_s, retries=0) as worker:
            for regmap in candidates:
                inverter = Inverter(dataclasses.replace(regmap, protocol=protocol), worker, Limits(0, 0))
                probes.append(await _probe(inverter, line, unit))
                log.debug("commission_probe", map=probes[-1].map, unit_id=unit, line=str(line),
                          outcome=probes[-1].outcome)
        await _quiet(protocol, probes[-1].outcome in ("no_reply", "error"))
    return probes


async def _quiet(protocol: Protocol, after_failure: bool) -> None:
    """The gap the firmware needs before the next worker's first frame (a worker only keeps it
    after its own frames), and after a failure the time a late reply may still take."""
    await asyncio.sleep(protocol.gap_s + (MAX_RTU_ADU * protocol.char_s if after_failure else 0.0))


def choose(probes: Iterable[Probe], maps: Sequence[RegisterMap], preferred: str | None) -> Found | str:
    """The inverter the scan found, or why none can be chosen (nothing fits, or ambiguous)."""
    by_ref = {map_reference(m): m for m in maps}
    fits: dict[tuple[int, str], Probe] = {}
    for probe in probes:
        if probe.outcome == "fits":
            fits.setdefault((probe.unit_id, probe.map), probe)  # the first line that answered
    if not fits:
        answered = sorted({p.unit_id for p in probes if p.answered})
        if answered:
            return ("something answers at unit " + ", ".join(map(str, answered))
                    + " but no shipped map reads plausible values there")
        return "nothing answered (check wiring, A/B polarity, termination, unit id and baud rate)"
    units = sorted({unit for unit, _ in fits})
    if len(units) > 1:
        return ("inverters answer at several unit ids (" + ", ".join(map(str, units))
                + "); choose one with --scan-units N")
    names = [name for _, name in fits]
    if len(names) > 1 and preferred not in names:
        return "several maps fit (" + ", ".join(names) + "); choose one with --map NAME"
    chosen = preferred if preferred in names else names[0]
    probe = fits[(units[0], chosen)]
    regmap = by_ref[chosen]
    protocol = dataclasses.replace(regmap.protocol, unit_id=probe.unit_id, baudrate=probe.line.baudrate)
    return Found(dataclasses.replace(regmap, protocol=protocol), probe.line, probe.unit_id,
                 regmap.protocol.baudrate, tuple(n for n in names if n != chosen))


# --- check and harmless write ----------------------------------------------------------------

async def check(inverter: Inverter) -> tuple[list[Check], list[Check]]:
    """Read every readable register once; verdicts per register and per role rule."""
    snapshot = await inverter.read_telemetry()
    regmap = inverter.regmap
    registers = [judge(regmap, regmap.registers[name], value) for name, value in snapshot.registers.items()]
    return registers, judge_roles(regmap, dict(snapshot.roles))


def default_write_register(regmap: RegisterMap) -> str:
    """The first setting the map can both read and write (rewriting it changes nothing)."""
    for reg in regmap.registers.values():
        if reg.readable and reg.writable:
            return reg.name
    raise CommissionError(f"map {regmap.family} has no register that can be read and written")


async def harmless_write(
    inverter: Inverter, kind: Literal["rewrite", "self_consumption"], register: str | None = None
) -> WriteCheck:
    """Rewrite a setting with its current value, or apply ``self_consumption``; both verified."""
    regmap = inverter.regmap
    try:
        if kind == "self_consumption":
            await inverter.apply("self_consumption")
            written = {w.register: w.resolve({}) for w in regmap.controls["self_consumption"].writes}
            return WriteCheck(kind, True, "self_consumption applied and read back", written)
        name = register or default_write_register(regmap)
        value = (await inverter.read_registers([name]))[name]
        if value is None:
            return WriteCheck(kind, False, f"{name}: could not be read")
        await inverter.write_register(name, value)
        return WriteCheck(kind, True, f"{name} rewritten with its value {value:g} and read back",
                          {name: value})
    except (CommandError, VerificationError, ModbusError) as exc:
        return WriteCheck(kind, False, str(exc))


async def commission_inverter(
    port: str,
    maps: Sequence[RegisterMap],
    *,
    preferred: str | None = None,
    units: Sequence[int] | None = None,
    bauds: Sequence[int] | None = None,
    scan_timeout_s: float = 0.5,
    timeout_s: float = 1.0,
    retries: int = 2,
    write: Literal["rewrite", "self_consumption", "skip"] = "rewrite",
    write_register: str | None = None,
) -> Report:
    """Scan, check and write-test; the report's ``problems`` say what failed (empty: passed)."""
    report = Report(port)
    report.probes = await scan(port, maps, units=units, bauds=bauds, timeout_s=scan_timeout_s)
    found = choose(report.probes, maps, preferred)
    if isinstance(found, str):
        report.problems.append(f"scan: {found}")
        return report
    report.found = found
    log.info("commission_found", map=found.regmap.family, unit_id=found.unit_id, line=str(found.line))
    protocol = found.regmap.protocol
    async with _worker(port, protocol, timeout_s, retries) as worker:
        inverter = Inverter(found.regmap, worker, Limits(0, 0), command_timeout_s=30.0)
        report.registers, report.roles = await check(inverter)
        for c in report.registers + report.roles:
            if c.verdict == "fail":
                report.problems.append(f"check: {_shown(c)}: {c.reason}")
        if write != "skip":
            report.write = await harmless_write(inverter, write, write_register)
            if not report.write.ok:
                report.problems.append(f"write: {report.write.detail}")
    return report


# --- hand-over: installer file, tariff, homeowner password -----------------------------------

def load_tariff(path: Path) -> dict[str, Any]:
    """The tariff section from a YAML file (``tariff: {...}`` or the keys alone), validated.

    Keys left out take the shipped defaults, as they would in the installer file.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommissionError(f"--tariff {path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CommissionError(f"--tariff {path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and set(raw) == {"tariff"}:
        raw = raw["tariff"]
    if not isinstance(raw, dict):
        raise CommissionError(f"--tariff {path}: expected a mapping of tariff settings, got {raw!r}")
    try:
        configuration.load([configuration.DEFAULT_FILE], environ={}, overrides={"tariff": raw})
    except configuration.ConfigError as exc:
        raise CommissionError(f"--tariff {path}: {exc}") from None
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
    text = ("# Installer configuration (overrides config/default.yaml); updated by `nattery commission`.\n"
            + yaml.safe_dump(existing, sort_keys=False, allow_unicode=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # may hold credentials
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        configuration.load([configuration.DEFAULT_FILE, tmp], environ={})
    except configuration.ConfigError as exc:
        tmp.unlink()
        raise CommissionError(f"{path}: not written, the result would be invalid: {exc}") from None
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    os.replace(tmp, path)


async def set_homeowner_password(cfg: configuration.Config, data_dir: Path, password: str) -> Path:
    """Store the homeowner's password in the web page's users file (seeding it if new).

    The web app reads the file when it starts: a running app sees the password after a restart.
    """
    check_password(password)
    users = Users(data_dir / USERS_FILE_NAME,
                  {"homeowner": cfg.web.homeowner_password, "installer": cfg.web.installer_password})
    await users.load()
    accounts = dict(users.accounts)
    accounts["homeowner"] = Account("homeowner", await asyncio.to_thread(hash_password, password), False)
    # auth.Users has no public "set without the old password" (the web page must ask for it);
    # the installer with shell access is the one who may, so its atomic writer is reused.
    await asyncio.to_thread(users._write, accounts)
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
    if sections:
        try:
            await asyncio.to_thread(update_installer_file, installer_file, sections, {"tariff"})
        except CommissionError as exc:
            report.problems.append(f"files: {exc}")
            return
        if "inverter" in sections:
            report.files["inverter"] = f"written to {installer_file}: " + ", ".join(
                f"inverter.{k}={v}" for k, v in sections["inverter"].items() if v is not None)
        if tariff is not None:
            report.files["tariff"] = f"written to {installer_file} ({len(tariff)} settings)"
            dropped = await drop_tariff_overrides(data_dir)
            if dropped:
                report.files["tariff"] += "; removed the homeowner's web overrides of " + ", ".join(dropped)
    if password is not None:
        path = await set_homeowner_password(cfg, data_dir, password)
        report.files["homeowner_password"] = f"set in {path} (the app reads it when it starts)"



async def commission(
    cfg: configuration.Config,
    maps: Sequence[RegisterMap],
    *,
    port: str,
    data_dir: Path,
    installer_file: Path,
    units: Sequence[int] | None = None,
    bauds: Sequence[int] | None = None,
    scan_timeout_s: float = 0.5,
    write: Literal["rewrite", "self_consumption", "skip"] = "rewrite",
    write_register: str | None = None,
    write_config: bool = False,
    tariff: Mapping[str, Any] | None = None,
    password: str | None = None,
) -> Report:
    """The whole procedure: scan, check, harmless write, then the hand-over files."""
    report = await commission_inverter(
        port, maps, preferred=cfg.inverter.map, units=units, bauds=bauds, scan_timeout_s=scan_timeout_s,
        timeout_s=cfg.inverter.timeout_s, retries=cfg.inverter.retries, write=write,
        write_register=write_register)
    await hand_over(report, cfg, data_dir=data_dir, installer_file=installer_file,
                    write_config=write_config, tariff=tariff, password=password)
    log.info("commission_done", ok=report.ok, problems=len(report.problems))
    return report


# --- the installer's report ------------------------------------------------------------------

_OUTCOMES: dict[str, str] = {"fits": "FITS", "implausible": "answers, implausible",
                             "exception": "answers, not this map", "no_reply": "no reply", "error": "error"}


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def render_text(report: Report) -> str:
    """The report as an installer reads it on a terminal: one table per step, then the verdict."""
    out = [f"Commissioning {report.port}", "", "1. Scan"]
    out += _table([("line", "unit", "map", "result")] + [
        (str(p.line), str(p.unit_id), p.map, _OUTCOMES[p.outcome] + (f": {p.detail}" if p.outcome != "no_reply" else ""))
        for p in report.probes])
    found = report.found
    if found is None:
        out += ["  -> no inverter identified"]
    else:
        out += [f"  -> {map_reference(found.regmap)} at unit {found.unit_id}, {found.line}"
                + (f" (also fits: {', '.join(found.also_fits)})" if found.also_fits else "")]
    if report.registers:
        out += ["", f"2. Check ({len(report.registers)} registers, {len(report.roles)} role rules)"]
        rows = [("register", "value", "unit", "verdict", "")]
        for c in report.registers + [Check("", None, "", "ok")] + report.roles:
            if not c.name:
                rows.append(("role", "", "", "", ""))
                continue
            rows.append((c.name, "-" if c.value is None else f"{c.value:g}", c.unit, c.verdict.upper()
                         if c.verdict == "fail" else c.verdict, c.reason))
        out += _table(rows)
    if report.write is not None:
        w = report.write
        out += ["", f"3. Harmless write ({w.kind.replace('_', ' ')}): {'ok' if w.ok else 'FAILED'}: {w.detail}"]
    if report.files:
        out += ["", "4. Hand-over"] + [f"  {name}: {text}" for name, text in report.files.items()]
    out += [""]
    if report.ok:
        out += ["PASSED"]
    else:
        out += [f"FAILED ({len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}):"]
        out += [f"  - {p}" for p in report.problems]
    return "\n".join(out)
