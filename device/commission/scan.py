"""Finding the inverter: which map answers plausibly at which line setting and unit id.

For each candidate map, line setting (the map's baud rate, parity, data and stop bits, or the
given baud rates) and unit id, the map's identity words (device type, model name: a mismatch is
"another family") and then its identifying registers (the ``soc_pct`` and ``state`` roles) are
read with a short timeout, one by one. Strictly one request on the line at a time:
one :class:`~device.modbus.worker.ModbusWorker` per line setting (its client fixes it), never two
at once, addressed to each unit id in turn. One connection per line setting, so a gateway's
pause after a connect (Huawei's SDongle) is waited once, not per unit id, and between unit ids
the worker's own line guard keeps the gap and waits out a late reply, as in operation.
A map's further devices (Fronius GEN24's meter at unit 200) keep their own unit ids: only the
map's main unit id is scanned. A map *fits* when every identifying value is plausible; an
exception reply means "something answers, but not with this map"; silence, nothing there.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import structlog

from device.commission.report import CommissionError, Found, Line, Outcome, Probe, map_reference, shown
from device.commission.rules import judge
from device.modbus.client import client_factory
from device.modbus.inverter import IdentityError, Inverter, Limits
from device.modbus.line_guard import MAX_RTU_ADU
from device.modbus.mapmodel import Protocol, RegisterMap
from device.modbus.worker import ExceptionReply, LinkDown, ModbusError, ModbusWorker, Priority, RequestTimeout

log = structlog.get_logger(__name__)

IDENTITY_ROLES = ("soc_pct", "state")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
MAX_UNIT = 247


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



def identity_registers(regmap: RegisterMap) -> list[str]:
    return [name for role in IDENTITY_ROLES if role in regmap.roles for name in regmap.roles[role].registers]


def make_worker(port: str, protocol: Protocol, timeout_s: float | None, retries: int) -> ModbusWorker:
    """A worker for commissioning: it never backs the inverter off as defective (a scan expects
    silence, and each probe decides for itself what a failure means)."""
    return ModbusWorker(client_factory(port, protocol), protocol, port=port, timeout_s=timeout_s,
                        retries=retries, defective_after=1_000_000)


async def _probe(inverter: Inverter, line: Line, unit: int) -> Probe:
    regmap = inverter.regmap
    names = identity_registers(regmap)

    def probe(outcome: Outcome, detail: str, values: dict[str, float | None] | None = None) -> Probe:
        return Probe(map_reference(regmap), unit, line, outcome, detail, values or {})

    values: dict[str, float | None] = {}
    try:
        await inverter.identify(Priority.ONDEMAND)  # the family's own proof first
        for name in names:  # one by one: the first silence or refusal ends the probe
            values.update(await inverter.read_registers([name]))
    except LinkDown as exc:
        raise CommissionError(f"cannot open {inverter.worker.port}: {exc}") from None
    except IdentityError as exc:
        return probe("other_family", str(exc))
    except ExceptionReply as exc:
        return probe("exception", f"exception {exc.code} ({ExceptionReply.NAMES.get(exc.code, 'unknown')})")
    except RequestTimeout:
        return probe("no_reply", "no reply")
    except ModbusError as exc:
        return probe("error", str(exc))
    verdicts = [judge(regmap, regmap.registers[n], values[n]) for n in names]
    bad = [f"{shown(c)}: {c.reason}" for c in verdicts if c.verdict == "fail"]
    if bad:
        return probe("implausible", "; ".join(bad), values)
    return probe("fits", ", ".join(shown(c) + (f" ({c.reason})" if c.reason else "") for c in verdicts), values)


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
    is made per line setting and stopped before the next starts; it is addressed to one unit id
    after the other (its protocol names the unit id that requests without their own go to).
    After a line's worker stops, the line is left quiet for the gap and, after a timeout, for
    the longest late reply before the next worker speaks. Raises :class:`CommissionError` if the
    port cannot be opened.
    """
    lines: dict[Line, dict[int, list[RegisterMap]]] = {}
    for regmap in maps:
        for baud in bauds or [regmap.protocol.baudrate]:
            by_unit = lines.setdefault(Line.of(regmap.protocol, baud), {})
            for unit in units or [regmap.protocol.unit_id]:
                by_unit.setdefault(unit, []).append(regmap)
    probes: list[Probe] = []
    for line, by_unit in lines.items():
        candidates = [regmap for regmaps in by_unit.values() for regmap in regmaps]
        protocol = dataclasses.replace(
            candidates[0].protocol, baudrate=line.baudrate, timeout_s=timeout_s,
            gap_s=max(m.protocol.gap_s for m in candidates),
            connect_pause_s=max(m.protocol.connect_pause_s for m in candidates))
        async with make_worker(port, protocol, timeout_s, retries=0) as worker:
            for unit, regmaps in by_unit.items():
                # idle between probes: the next request goes to this unit id
                worker.protocol = dataclasses.replace(protocol, unit_id=unit)
                for regmap in regmaps:
                    # the line's settings, the map's own further devices (Fronius GEN24's meter at 200)
                    own = dataclasses.replace(worker.protocol, devices=regmap.protocol.devices)
                    inverter = Inverter(dataclasses.replace(regmap, protocol=own), worker, Limits(0, 0))
                    probes.append(await _probe(inverter, line, unit))
                    log.debug("commission_probe", map=probes[-1].map, unit_id=unit, line=str(line),
                              outcome=probes[-1].outcome)
        await _quiet(protocol, probes[-1].outcome in ("no_reply", "error"))
    return probes


async def _quiet(protocol: Protocol, after_failure: bool) -> None:
    """The gap the firmware needs before the next worker's first frame (a worker only keeps it
    after its own frames), and after a failure the time a late reply may still take."""
    await asyncio.sleep(protocol.gap_s + (MAX_RTU_ADU * protocol.char_s if after_failure else 0.0))


def choose(probes: Sequence[Probe], maps: Sequence[RegisterMap], preferred: str | None) -> Found | str:
    """The inverter the scan found, or why none can be chosen (nothing fits, or ambiguous)."""
    by_ref = {map_reference(m): m for m in maps}
    fits: dict[tuple[int, str], Probe] = {}
    for probe in probes:
        if probe.outcome == "fits":
            fits.setdefault((probe.unit_id, probe.map), probe)  # the first line that answered
    if not fits:
        answered = sorted({p.unit_id for p in probes if p.answered})
        garbled = sorted({str(p.line) for p in probes if p.outcome == "error"})
        other = [p for p in probes if p.outcome == "other_family"]
        if other and len({p.detail for p in other}) == 1 and len({p.map for p in other}) == len(
                {p.map for p in probes if p.answered}):
            return f"the inverter at unit {other[0].unit_id} is of no family tried: {other[0].detail}"
        if answered:
            return ("something answers at unit " + ", ".join(map(str, answered))
                    + " but no map tried reads plausible values there")
        if garbled:
            return ("only garbled or foreign replies (at " + ", ".join(garbled)
                    + "): another baud rate or parity? another master on the bus?")
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
