"""The procedure: scan, check every register, a harmless verified write, then the hand-over."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import structlog

from device import config as configuration
from device.commission.handover import hand_over
from device.commission.report import Check, CommissionError, Report, WriteCheck, shown
from device.commission.rules import judge, judge_consistency, judge_roles
from device.commission.scan import choose, make_worker, scan
from device.modbus.inverter import CommandError, Inverter, Limits, VerificationError
from device.modbus.mapmodel import RegisterMap
from device.modbus.worker import ModbusError

log = structlog.get_logger(__name__)


async def check(inverter: Inverter) -> tuple[list[Check], list[Check]]:
    """Read every readable register once; verdicts per register and per role rule."""
    snapshot = await inverter.read_telemetry()
    regmap = inverter.regmap
    registers = [judge(regmap, regmap.registers[name], value) for name, value in snapshot.registers.items()]
    roles = dict(snapshot.roles)
    return registers, judge_roles(regmap, roles) + judge_consistency(regmap, snapshot.registers, roles)


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
            names = list(dict.fromkeys(w.register for w in regmap.controls["self_consumption"].writes))
            read_back = await inverter.read_registers(names)  # as verified (bit fields merged)
            written = {name: value for name, value in read_back.items() if value is not None}
            return WriteCheck(kind, True, "self_consumption applied and read back", written)
        name = register or default_write_register(regmap)
        value = (await inverter.read_registers([name]))[name]
        if value is None:
            return WriteCheck(kind, False, f"{name}: could not be read")
        await inverter.write_register(name, value)
        return WriteCheck(kind, True, f"{name} rewritten with its value {value:g} and read back",
                          {name: value})
    except (CommandError, CommissionError, VerificationError, ModbusError) as exc:
        return WriteCheck(kind, False, str(exc))


async def commission_inverter(
    port: str,
    maps: Sequence[RegisterMap],
    *,
    preferred: str | None = None,
    units: Sequence[int] | None = None,
    bauds: Sequence[int] | None = None,
    scan_timeout_s: float = 0.5,
    timeout_s: float | None = None,
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
    async with make_worker(port, protocol, timeout_s, retries) as worker:
        inverter = Inverter(found.regmap, worker, Limits(0, 0), command_timeout_s=30.0)
        report.registers, report.roles = await check(inverter)
        for c in report.registers + report.roles:
            if c.verdict == "fail":
                report.problems.append(f"check: {shown(c)}: {c.reason}")
        if write != "skip":
            report.write = await harmless_write(inverter, write, write_register)
            if not report.write.ok:
                report.problems.append(f"write: {report.write.detail}")
    return report



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
    market: Mapping[str, Any] | None = None,
    password: str | None = None,
) -> Report:
    """The whole procedure: scan, check, harmless write, then the hand-over files."""
    report = await commission_inverter(
        port, maps, preferred=cfg.inverter.map, units=units, bauds=bauds, scan_timeout_s=scan_timeout_s,
        timeout_s=cfg.inverter.timeout_s, retries=cfg.inverter.retries, write=write,
        write_register=write_register)
    await hand_over(report, cfg, data_dir=data_dir, installer_file=installer_file,
                    write_config=write_config, tariff=tariff, market=market, password=password)
    log.info("commission_done", ok=report.ok, problems=len(report.problems))
    return report
