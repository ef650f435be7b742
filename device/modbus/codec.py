"""Conversion between 16-bit register words and engineering values (scale, sign, word order)."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from device.modbus.registermap import Register, RegisterMap

_FORMATS = {"U16": "H", "S16": "h", "U32": "I", "S32": "i", "U64": "Q", "S64": "q", "F32": "f"}


class EncodeError(ValueError):
    """A value cannot be written to a register (out of range or not representable)."""


def decode_raw(register: Register, words: Sequence[int]) -> int | float:
    """The register's raw number (before scaling) from its words."""
    ordered = list(words) if register.word_order == "big" else list(reversed(words))
    data = b"".join(w.to_bytes(2, "big") for w in ordered)
    return struct.unpack(">" + _FORMATS[register.type], data)[0]


def decode(register: Register, words: Sequence[int]) -> float:
    """The engineering value of a register (raw × scale + offset)."""
    value = decode_raw(register, words) * register.scale + register.offset
    return round(value, 6)


def encode(register: Register, value: float) -> list[int]:
    """Words to write so that the register reads back ``value`` (engineering units)."""
    if register.min is not None and value < register.min or register.max is not None and value > register.max:
        raise EncodeError(
            f"{register.name}: {value} {register.unit} outside {register.min}..{register.max}"
        )
    raw: int | float = (value - register.offset) / register.scale
    if register.type != "F32":
        raw = round(raw)
    try:
        data = struct.pack(">" + _FORMATS[register.type], raw)
    except struct.error:
        raise EncodeError(f"{register.name}: {value} {register.unit} does not fit {register.type}") from None
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if register.word_order == "big" else list(reversed(words))


def decode_block(
    registers: Sequence[Register], start: int, words: Sequence[int]
) -> dict[str, float]:
    """Values of every register lying wholly inside a block read from ``start``."""
    values = {}
    for reg in registers:
        offset = reg.address - start
        if offset >= 0 and offset + reg.size <= len(words):
            values[reg.name] = decode(reg, words[offset : offset + reg.size])
    return values


def semantic(regmap: RegisterMap, values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Role values (our units and signs) from register values; ``None`` where any part is missing."""
    result: dict[str, float | None] = {}
    for role, spec in regmap.roles.items():
        parts = [values.get(name) for name in spec.registers]
        result[role] = None if any(p is None for p in parts) else spec.sign * sum(parts)  # type: ignore[misc]
    return result
