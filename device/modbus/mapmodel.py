"""The register map's data model: frozen dataclasses for the protocol, registers, roles and
controls of one inverter family, and the vocabulary (types, tables, access, roles, modes) a map
may use.

:mod:`~device.modbus.registermap` loads and checks a map file into these; the codec and the block
planner work on them. Own module so that the loader can use the codec and the planner to check a
map, and they can use the model, without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

TYPES: dict[str, int] = {"U16": 1, "S16": 1, "U32": 2, "S32": 2, "U64": 4, "S64": 4, "F32": 2}
TABLES = ("holding", "input")
ACCESS = ("r", "rw", "w")
WORD_ORDERS = ("big", "little")
ROLE_UNITS: dict[str, str | None] = {
    "soc_pct": "%",
    "battery_w": "W",
    "pv_w": "W",
    "grid_w": "W",
    "load_w": "W",
    "battery_temp_c": "°C",
    "inverter_temp_c": "°C",
    "state": None,
    "energy_import_wh": "Wh",
    "energy_export_wh": "Wh",
    "energy_charge_wh": "Wh",
    "energy_discharge_wh": "Wh",
    "energy_pv_wh": "Wh",
    "energy_load_wh": "Wh",
}
REQUIRED_ROLES = ("soc_pct", "battery_w", "pv_w", "grid_w", "load_w")
MODES = ("self_consumption", "charge", "discharge", "hold")
SELF_CONSUMPTION = MODES[0]  # the inverter's own operation: what every fallback returns to
MAX_BLOCK = 125  # Modbus limit for one read (FC3/FC4)
MAIN = ""  # the device at ``protocol.unit_id`` (the inverter); others are named in ``protocol.devices``


class RegisterAccessError(ValueError):
    """The map has no register of that name (``unknown``), or it does not allow the access."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True)
class Protocol:
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    bytesize: int = 8
    stopbits: int = 1
    unit_id: int = 1
    word_order: Literal["big", "little"] = "big"
    gap_s: float = 0.05
    timeout_s: float = 1.0
    max_block: int = MAX_BLOCK
    max_gap: int = 10
    connect_pause_s: float = 0.0  # quiet time after a (re)connect before the first request
    # the inverter's own timeout for external control: a forced setting not written again within
    # it lapses into the inverter's own operation (KOSTAL, SMA); the simulator plays it
    control_timeout_s: float | None = None
    devices: tuple[tuple[str, int], ...] = ()  # further devices behind the same link: (name, unit id)

    def unit_of(self, device: str) -> int:
        """The unit id of ``device`` (:data:`MAIN`: ``unit_id``, which an installer may override)."""
        return self.unit_id if device == MAIN else dict(self.devices)[device]

    def request_unit(self, device: str) -> int | None:
        """The unit id a request to ``device`` names: ``None`` for :data:`MAIN`, so that the
        worker's own unit id (the installer's or the scan's) applies."""
        return None if device == MAIN else dict(self.devices)[device]

    def device_label(self, device: str) -> str:
        """``device`` as messages name it, e.g. ``meter (unit 200)``."""
        return f"unit {self.unit_id}" if device == MAIN else f"{device} (unit {self.unit_of(device)})"

    @property
    def char_s(self) -> float:
        """Seconds one character takes on the wire (start + data + parity + stop bits)."""
        bits = 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits
        return bits / self.baudrate


@dataclass(frozen=True)
class Register:
    name: str
    address: int
    table: Literal["holding", "input"]
    type: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    access: Literal["r", "rw", "w"] = "r"
    word_order: Literal["big", "little"] = "big"
    description: str = ""
    min: float | None = None
    max: float | None = None
    enum: Mapping[int, str] = field(default_factory=dict)
    word_addresses: tuple[int, ...] = ()  # only for words split over non-adjacent addresses
    invalid: tuple[int, ...] = ()  # raw values meaning "no reading" (SunSpec "not implemented")
    absolute: bool = False  # the magnitude counts, whatever sign the firmware puts on it
    scale_factor: str | None = None  # an S16 register n of this map: value = raw x scale x 10^n
    model: int | None = None  # SunSpec: the model this point belongs to, ``model_offset`` from its ID
    model_offset: int = 0
    device: str = MAIN  # the Modbus device (unit id) holding it: a name in ``protocol.devices``

    def scaled(self, exponent: float) -> Register:
        """This register with its scale-factor register's reading applied (a fixed scale)."""
        return replace(self, scale=self.scale * 10.0 ** int(exponent), scale_factor=None)

    @property
    def size(self) -> int:
        """Number of 16-bit words."""
        return TYPES[self.type]

    @property
    def addresses(self) -> tuple[int, ...]:
        """The address of each word, ascending; ``codec`` takes the words in this order."""
        return self.word_addresses or tuple(range(self.address, self.address + self.size))

    @property
    def end(self) -> int:
        """First address after this register's last word (a split register spans its gap)."""
        return self.addresses[-1] + 1

    @property
    def span(self) -> int:
        """Addresses a read must cover to get every word: ``size`` unless the words are split."""
        return self.end - self.address

    @property
    def readable(self) -> bool:
        return self.access in ("r", "rw")

    @property
    def writable(self) -> bool:
        return self.access in ("w", "rw")


@dataclass(frozen=True)
class RoleSpec:
    """A semantic value: ``sign`` × Σ(term sign × register), vendor → our convention.

    ``signs`` (one per register, default all +1) lets a family derive a value it does not
    report, e.g. house load = inverter output − grid meter (positive = export).
    """

    registers: tuple[str, ...]
    sign: int = 1
    signs: tuple[int, ...] = ()

    @property
    def terms(self) -> tuple[tuple[str, int], ...]:
        """(register, factor) pairs with the overall sign applied."""
        signs = self.signs or (1,) * len(self.registers)
        return tuple((name, self.sign * s) for name, s in zip(self.registers, signs, strict=True))


@dataclass(frozen=True)
class ParamSpec:
    min: float
    max: float
    unit: str = "W"


@dataclass(frozen=True)
class WriteSpec:
    """One register write (engineering units): a literal ``value``; ``param × factor + offset``,
    divided by the reading of ``divide_by`` and rounded toward zero if given (a power turned into
    a current with the measured battery voltage, or into a percentage of a rated power); or the reading of ``source`` (a setting of the
    inverter's own, e.g. the battery's low SOC). ``bits`` (a mask) makes it a read-modify-write:
    only those bits change, the others keep what the inverter holds.
    """

    register: str
    value: float | None = None
    param: str | None = None
    factor: float = 1.0
    offset: float = 0.0
    source: str | None = None
    divide_by: str | None = None
    bits: int | None = None
    scale_factor: str | None = None  # the written register's scale-factor register (set by the loader)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Registers to read before this write can be resolved (and encoded)."""
        return tuple(name for name in (self.source, self.divide_by, self.register if self.bits else None,
                                       self.scale_factor) if name is not None)

    @property
    def literal(self) -> bool:
        return self.value is not None

    def resolve(self, args: Mapping[str, float], readings: Mapping[str, float | None] | None = None) -> float:
        """The value to write; ``readings`` must hold every register of :attr:`inputs`."""
        readings = readings or {}
        if self.source is not None:
            value = readings[self.source]
            assert value is not None
        elif self.param is None:
            assert self.value is not None
            value = self.value
        else:
            value = args[self.param] * self.factor + self.offset
            if self.divide_by is not None:
                divisor = readings[self.divide_by]
                assert divisor is not None and divisor > 0
                value = float(math.trunc(value / divisor))  # toward zero: never more than asked
        if self.bits is not None:
            old = readings[self.register]
            assert old is not None
            value = float((int(old) & ~self.bits) | (int(value) & self.bits))
        return value


@dataclass(frozen=True)
class Requirement:
    """A setting the inverter must have for a control to make sense (else it is refused)."""

    register: str
    values: tuple[float, ...]
    reason: str


@dataclass(frozen=True)
class Control:
    name: str
    params: Mapping[str, ParamSpec]
    writes: tuple[WriteSpec, ...]
    requires: tuple[Requirement, ...] = ()
    refresh_s: float | None = None  # while active, the bridge writes the control again this often

    @property
    def literal_writes(self) -> dict[str, float]:
        return {w.register: w.value for w in self.writes if w.literal and w.value is not None}

    @property
    def inputs(self) -> tuple[str, ...]:
        """Registers read before the writes: requirements, sources, divisors, bit fields."""
        names = [r.register for r in self.requires] + [n for w in self.writes for n in w.inputs]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class IdentityCheck:
    """Words that prove the family: a code (``values``: allowed code -> what it means) or an ASCII
    text (``prefixes``: the text must start with one of them; ``contains``: hold one of them, as
    GoodWe's serial numbers carry the family's tag), read before anything is written.

    ``known`` names codes of other families, so that a refusal can say what was found.
    """

    name: str
    table: Literal["holding", "input"]
    address: int
    words: int
    values: Mapping[int, str] = field(default_factory=dict)
    prefixes: tuple[str, ...] = ()
    known: Mapping[int, str] = field(default_factory=dict)
    contains: tuple[str, ...] = ()
    device: str = MAIN
    model: int | None = None  # SunSpec: a point of this model, ``model_offset`` from its ID
    model_offset: int = 0

    @property
    def is_text(self) -> bool:
        return bool(self.prefixes or self.contains)

    def found(self, words: Sequence[int]) -> str | int:
        """What the inverter answered: its text (cut at the first NUL, spaces stripped) or its code."""
        raw = b"".join(w.to_bytes(2, "big") for w in words)
        if self.is_text:
            return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip()
        return int.from_bytes(raw, "big")

    def matches(self, found: str | int) -> bool:
        if isinstance(found, str):
            return any(found.startswith(p) for p in self.prefixes) or any(c in found for c in self.contains)
        return found in self.values

    def describe(self, found: str | int) -> str:
        """``found`` with its meaning where the map knows it, e.g. ``1280 (three-phase LV hybrid)``."""
        if isinstance(found, str):
            return repr(found)
        label = self.values.get(found) or self.known.get(found)
        return f"{found}" + (f" ({label})" if label else "")

    def expected(self) -> str:
        if self.contains:
            return "a text containing " + " or ".join(map(repr, self.contains))
        if self.is_text:
            return "a text starting " + " or ".join(map(repr, self.prefixes))
        return " or ".join(f"{k} ({v})" for k, v in self.values.items())

    def sample_words(self) -> list[int]:
        """The words of the first allowed value (what the simulator answers)."""
        if self.is_text:
            text = self.prefixes[0] if self.prefixes else "00000" + self.contains[0]  # a serial number
            raw = text.encode("ascii").ljust(2 * self.words, b"\0")[: 2 * self.words]
            return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
        value = next(iter(self.values))
        return [(value >> (16 * (self.words - 1 - i))) & 0xFFFF for i in range(self.words)]


@dataclass(frozen=True)
class SunSpecLayout:
    """Where a SunSpec device keeps its models: the marker ``SunS`` at ``base``, then each model
    as its ID and length L followed by L registers, up to the end marker (ID 0xFFFF). One per
    Modbus device of the map (Fronius GEN24: the inverter at unit 1, its meter at unit 200).

    ``chain`` is (model id, L) in device order: as the map's nominal device lays it out until
    :func:`device.modbus.sunspec.locate` has read the real one (``located``).
    """

    bases: tuple[int, ...]
    chain: tuple[tuple[int, int], ...]
    base: int
    located: bool = False
    device: str = MAIN  # the Modbus device whose chain this is

    def starts(self) -> dict[int, int]:
        """Address of each model's ID register (the first model of an id counts)."""
        address, result = self.base + 2, dict[int, int]()
        for model, length in self.chain:
            result.setdefault(model, address)
            address += 2 + length
        return result

    @property
    def end(self) -> int:
        """Address of the end marker."""
        return self.base + 2 + sum(2 + length for _, length in self.chain)


@dataclass(frozen=True)
class RegisterMap:
    family: str
    name: str
    path: Path
    protocol: Protocol
    registers: Mapping[str, Register]
    roles: Mapping[str, RoleSpec]
    controls: Mapping[str, Control]
    unreadable: Mapping[str, tuple[tuple[int, int], ...]]
    products: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    identity: tuple[IdentityCheck, ...] = ()
    sunspec: Mapping[str, SunSpecLayout] = field(default_factory=dict)  # by device; empty: no SunSpec

    def telemetry_registers(self) -> list[Register]:
        """Every readable register: polled each cycle (cheap once blocks are coalesced)."""
        return [r for r in self.registers.values() if r.readable]

    def register(self, name: object, access: Literal["read", "write"]) -> Register:
        """The register called ``name`` if it allows ``access``, else :class:`RegisterAccessError`.

        Every path that reads or writes a named register (MQTT command, web page, commissioning)
        asks here; the value to write is checked by :func:`device.modbus.codec.encode_write`.
        """
        reg = self.registers.get(name) if isinstance(name, str) else None
        if reg is None:
            raise RegisterAccessError(f"unknown register {name!r} in map {self.family}", unknown=True)
        if access == "write" and not reg.writable:
            raise RegisterAccessError(f"register {reg.name!r} is read-only (access {reg.access!r})")
        if access == "read" and not reg.readable:
            raise RegisterAccessError(f"register {reg.name!r} is write-only (access {reg.access!r})")
        return reg

    def is_unreadable(self, table: str, address: int) -> bool:
        return any(lo <= address <= hi for lo, hi in self.unreadable.get(table, ()))
