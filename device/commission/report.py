"""What commissioning found, as data (JSON for tools) and as the installer's terminal report."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from device.modbus.mapmodel import Protocol, RegisterMap
from device.modbus.registermap import MAPS_DIR

Verdict = Literal["ok", "warn", "fail", "unchecked"]
Outcome = Literal["fits", "other_family", "implausible", "exception", "no_reply", "error"]


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
        return self.outcome in ("fits", "other_family", "implausible", "exception")


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
    return regmap.family if regmap.path.parent == MAPS_DIR and regmap.path.stem == regmap.family else str(regmap.path)



def shown(c: Check) -> str:
    return f"{c.name} " + ("-" if c.value is None else f"{c.value:g}") + (f" {c.unit}" if c.unit else "")



_OUTCOMES: dict[str, str] = {"fits": "FITS", "other_family": "answers, another family",
                             "implausible": "answers, implausible",
                             "exception": "answers, not this map", "no_reply": "no reply", "error": "error"}


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


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
        for c in [*report.registers, Check("", None, "", "ok"), *report.roles]:
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
