"""Conversion between 16-bit register words and engineering values (scale, sign, word order).

Words are always passed in the order of :attr:`Register.addresses` (ascending address);
``word_order`` then says whether the first of them is the high word (``big``) or the low word
(``little``). That holds for split registers too (Deye total grid buy: low word at 78, high
word at 80), so nothing here needs to know where the words came from.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from common.numbers import finite_float
from device.modbus.mapmodel import Register, RegisterMap

_FORMATS = {"U16": "H", "S16": "h", "U32": "I", "S32": "i", "U64": "Q", "S64": "q", "F32": "f"}


class EncodeError(ValueError):
    """A value cannot be written to a register (not a number, not one of its enum values, out of
    range or not representable)."""


def decode_raw(register: Register, words: Sequence[int]) -> int | float:
    """The register's raw number (before scaling) from its words."""
    if len(words) != register.size:
        raise ValueError(f"{register.name}: {register.type} needs {register.size} words, got {len(words)}")
    ordered = list(words) if register.word_order == "big" else list(reversed(words))
    data = b"".join(w.to_bytes(2, "big") for w in ordered)
    return struct.unpack(">" + _FORMATS[register.type], data)[0]


def decode(register: Register, words: Sequence[int]) -> float:
    """The engineering value of a register (raw × scale + offset)."""
    value = decode_raw(register, words) * register.scale + register.offset
    return round(value, 6)


def encode(register: Register, value: float) -> list[int]:
    """Words to write so that the register reads back ``value`` (engineering units).

    Any value the register can hold, in or out of its enum (the simulator plays implausible
    states); a value sent to an inverter goes through :func:`encode_write`.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EncodeError(f"{register.name}: got {value!r}, expected a number")
    if finite_float(value) is None:  # NaN, ±∞ or an integer beyond any float
        raise EncodeError(f"{register.name}: {value} is not a finite number")
    if (register.min is not None and value < register.min) or (register.max is not None and value > register.max):
        raise EncodeError(
            f"{register.name}: {value} {register.unit} outside {register.min}..{register.max}"
        )
    raw: int | float = (value - register.offset) / register.scale
    if register.type != "F32":
        raw = round(raw)
    try:
        data = struct.pack(">" + _FORMATS[register.type], raw)
    except (struct.error, OverflowError):
        raise EncodeError(f"{register.name}: {value} {register.unit} does not fit {register.type}") from None
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if register.word_order == "big" else list(reversed(words))


def encode_write(register: Register, value: float) -> list[int]:
    """:func:`encode`, and for a register with an enum, only one of its values.

    The one check of a value written to an inverter, wherever it comes from (control, MQTT
    command, web page, commissioning); :meth:`RegisterMap.register` checks the name.
    """
    if register.enum and finite_float(value) is not None and (
        value != int(value) or int(value) not in register.enum
    ):  # a value that is not finite is refused by encode
        allowed = ", ".join(f"{k} ({v})" for k, v in register.enum.items())
        raise EncodeError(f"{register.name}: got {value:g}, allowed: {allowed}")
    return encode(register, value)


def is_invalid(register: Register, words: Sequence[int]) -> bool:
    """The words are one of the register's ``invalid`` markers (compared as unsigned words)."""
    ordered = list(words) if register.word_order == "big" else list(reversed(words))
    return int.from_bytes(b"".join(w.to_bytes(2, "big") for w in ordered), "big") in register.invalid


def reading(register: Register, words: Sequence[int], exponent: float | None = None) -> float | None:
    """What the register reads: ``None`` for an invalid marker; its scale-factor register's
    reading ``exponent`` applied if it has one; the magnitude if it is ``absolute``."""
    if register.invalid and is_invalid(register, words):
        return None
    value = decode(register if exponent is None else register.scaled(exponent), words)
    return abs(value) if register.absolute else value


def decode_block(
    registers: Sequence[Register], start: int, words: Sequence[int]
) -> dict[str, float | None]:
    """Readings of every register whose words all lie inside a block read from ``start``; a
    register whose scale factor is not in the block (or invalid) reads ``None``."""
    inside = {r.name: r for r in registers if r.address >= start and r.end <= start + len(words)}
    raw = {name: [words[a - start] for a in reg.addresses] for name, reg in inside.items()}
    values: dict[str, float | None] = {}
    for name, reg in inside.items():
        if reg.scale_factor is None:
            values[name] = reading(reg, raw[name])
            continue
        factor = inside.get(reg.scale_factor)
        exponent = None if factor is None else reading(factor, raw[factor.name])
        values[name] = None if exponent is None else reading(reg, raw[name], exponent)
    return values


def semantic(regmap: RegisterMap, values: Mapping[str, float | None]) -> dict[str, float | None]:
    """Role values (our units and signs) from register values; ``None`` where any part is missing."""
    result: dict[str, float | None] = {}
    for role, spec in regmap.roles.items():
        total: float | None = 0.0
        for name, factor in spec.terms:
            part = values.get(name)
            total = None if part is None or total is None else total + factor * part
        result[role] = None if total is None else round(total, 6)
    return result
