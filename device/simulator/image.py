"""The simulated inverter's register image: the words a master reads and writes.

Addresses are legal the way real firmware makes them legal: a read may bridge the unused
addresses between registers of the same table (firmware answers 0 there, which the block
planner relies on), but not leave the table's span or touch a range the map marks
``unreadable``; a write must hit writable registers only, and a value outside a register's
``min``/``max`` is refused with ILLEGAL VALUE, as firmware does. A map with more than one
device (``protocol.devices``: Fronius GEN24's meter at unit 200) has one address space per
device; :attr:`RegisterImage.words` is the main device's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from device.modbus import codec
from device.modbus.mapmodel import MAIN, Register, RegisterMap
from device.simulator.frames import ILLEGAL_ADDRESS, ILLEGAL_VALUE

log = structlog.get_logger(__name__)

_TYPE_BITS = {"U16": 16, "S16": 16, "U32": 32, "S32": 32, "U64": 64, "S64": 64}


class ModbusError(Exception):
    """A request the firmware refuses with a Modbus exception code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def representable(register: Register, value: float) -> float:
    """``value`` clamped to what the register's type and limits can hold (counters saturate)."""
    low, high = register.min, register.max
    bits = _TYPE_BITS.get(register.type)
    if bits is not None:
        signed = register.type.startswith("S")
        raw_low = -(1 << (bits - 1)) if signed else 0
        raw_high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        ends = sorted(raw * register.scale + register.offset for raw in (raw_low, raw_high))
        low = ends[0] if low is None else max(low, ends[0])
        high = ends[1] if high is None else min(high, ends[1])
    if low is not None:
        value = max(low, value)
    if high is not None:
        value = min(high, value)
    return value


class _Space:
    """One device's words by table and address, the register covering each address, and the
    span of each table a read may touch."""

    def __init__(self) -> None:
        self.words: dict[str, dict[int, int]] = {"holding": {}, "input": {}}
        self.owner: dict[str, dict[int, Register]] = {"holding": {}, "input": {}}
        self.span: dict[str, tuple[int, int]] = {}


class RegisterImage:
    """Words by device, table and address, plus the register covering each address."""

    def __init__(self, regmap: RegisterMap) -> None:
        self.regmap = regmap
        self.spaces = {device: _Space() for device in (MAIN, *(name for name, _ in regmap.protocol.devices))}
        for reg in regmap.registers.values():
            space = self.spaces[reg.device]
            for address in reg.addresses:
                space.owner[reg.table][address] = reg
                space.words[reg.table][address] = 0
        for check in regmap.identity:  # the family's identity words, as the firmware reports them
            for i, word in enumerate(check.sample_words()):
                self.spaces[check.device].words[check.table][check.address + i] = word
        for space in self.spaces.values():
            space.span = {table: (min(words), max(words)) for table, words in space.words.items() if words}

    @property
    def words(self) -> dict[str, dict[int, int]]:
        """The main device's words by table and address."""
        return self.spaces[MAIN].words

    @property
    def owner(self) -> dict[str, dict[int, Register]]:
        """The main device's register at each address, by table."""
        return self.spaces[MAIN].owner

    @property
    def span(self) -> dict[str, tuple[int, int]]:
        return self.spaces[MAIN].span

    # --- engineering values -------------------------------------------------------------
    def resolved(self, reg: Register) -> Register:
        """``reg`` with its scale-factor register's current value applied (SunSpec ``*_SF``)."""
        return reg if reg.scale_factor is None else reg.scaled(self.get(reg.scale_factor))

    def get(self, name: str) -> float:
        reg = self.resolved(self.regmap.registers[name])
        return codec.decode(reg, [self.spaces[reg.device].words[reg.table][a] for a in reg.addresses])

    def set(self, name: str, value: float) -> None:
        """Store ``value`` (engineering units), saturating at what the register can hold."""
        reg = self.resolved(self.regmap.registers[name])
        words = codec.encode(reg, representable(reg, value))
        for address, word in zip(reg.addresses, words, strict=True):
            self.spaces[reg.device].words[reg.table][address] = word

    def set_roles(self, roles: Mapping[str, float]) -> None:
        """Write role values (our units and signs) into the map's role registers.

        A role is ``Σ factor × register``. Roles with fewer terms go first, so a register shared
        with a derived role (Huawei: load = inverter output − grid meter) is pinned by its own
        role, and the derived role fills only its remaining registers. The remainder is split
        evenly over those, each part rounded to its register's resolution and the rounding put
        on the last (and what a register could not hold, such as a negative part of an unsigned
        power, on another one), so that ``codec.semantic`` of the image gives the role values back.
        """
        pinned: set[str] = set()
        specs = sorted((spec for role, spec in self.regmap.roles.items() if role in roles),
                       key=lambda spec: len(spec.registers))
        by_spec = {id(spec): roles[role] for role, spec in self.regmap.roles.items() if role in roles}
        for spec in specs:
            remainder = by_spec[id(spec)]
            free = []
            for name, factor in spec.terms:
                if name in pinned:
                    remainder -= factor * self.get(name)
                else:
                    free.append((name, factor))
            for i, (name, factor) in enumerate(free):
                reg = self.resolved(self.regmap.registers[name])
                part = remainder if i == len(free) - 1 else remainder / (len(free) - i)
                self.set(name, self._rounded(reg, part / factor))
                remainder -= factor * self.get(name)
                pinned.add(name)
            for name, factor in free:  # a part a register could not hold (Fronius: charge and
                if abs(remainder) < 1e-9:  # discharge power, each >= 0) goes to another term
                    break
                before = self.get(name)
                self.set(name, self._rounded(self.resolved(self.regmap.registers[name]), before + remainder / factor))
                remainder -= factor * (self.get(name) - before)

    @staticmethod
    def _rounded(reg: Register, value: float) -> float:
        return value if reg.type == "F32" else round(value / reg.scale) * reg.scale

    # --- Modbus access ------------------------------------------------------------------
    def read(self, table: str, start: int, count: int, device: str = MAIN) -> list[int]:
        space = self.spaces[device]
        span = space.span.get(table)
        end = start + count - 1
        if span is None or start < span[0] or end > span[1]:
            raise ModbusError(ILLEGAL_ADDRESS, f"{table} {start}..{end} outside {span}")
        for low, high in self.regmap.unreadable.get(table, ()) if device == MAIN else ():
            if start <= high and low <= end:
                raise ModbusError(ILLEGAL_ADDRESS, f"{table} {start}..{end} touches unreadable {low}..{high}")
        for address in range(start, end + 1):
            reg = space.owner[table].get(address)
            if reg is not None and not reg.readable:
                raise ModbusError(ILLEGAL_ADDRESS, f"{reg.name} is write-only")
        words = space.words[table]
        return [words.get(a, 0) for a in range(start, end + 1)]

    def write(self, start: int, values: Sequence[int], device: str = MAIN) -> list[Register]:
        """Apply a master's write to holding registers; all-or-nothing. Returns the registers hit."""
        space = self.spaces[device]
        owners = space.owner["holding"]
        touched: dict[str, Register] = {}
        for address in range(start, start + len(values)):
            reg = owners.get(address)
            if reg is None or not reg.writable:
                what = "no register" if reg is None else f"{reg.name} is read-only"
                raise ModbusError(ILLEGAL_ADDRESS, f"holding {address}: {what}")
            touched[reg.name] = reg
        new = dict(space.words["holding"])
        new.update({start + i: v for i, v in enumerate(values)})
        for reg in map(self.resolved, touched.values()):
            value = codec.decode(reg, [new[a] for a in reg.addresses])
            if (reg.min is not None and value < reg.min) or (reg.max is not None and value > reg.max):
                raise ModbusError(ILLEGAL_VALUE, f"{reg.name}: {value} outside {reg.min}..{reg.max}")
        space.words["holding"] = new
        return list(touched.values())
