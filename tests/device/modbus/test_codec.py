"""Codec: words ↔ engineering values for every type and word order, split words, roles."""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import pytest

from device.modbus import codec
from device.modbus.mapmodel import (
    TYPES,
    Protocol,
    Register,
    RegisterAccessError,
    RegisterMap,
    RoleSpec,
)

RAW_RANGES = {
    "U16": (0, 2**16 - 1), "S16": (-(2**15), 2**15 - 1),
    "U32": (0, 2**32 - 1), "S32": (-(2**31), 2**31 - 1),
    "U64": (0, 2**53), "S64": (-(2**53), 2**53),  # exact in a float: what values are
}


def _reg(type_: str, word_order: str = "big", **kw: object) -> Register:
    kw.setdefault("name", f"r_{type_}_{word_order}")
    kw.setdefault("address", 100)
    return Register(table="holding", type=type_, word_order=word_order, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("type_", sorted(TYPES))
def test_round_trip_every_type_and_word_order(type_: str, word_order: str) -> None:
    rng = random.Random(f"{type_}{word_order}")
    reg = _reg(type_, word_order)
    if type_ == "F32":
        samples = [0.0, 1.5, -2.25, 1e6, -3.0e-3] + [rng.uniform(-1e5, 1e5) for _ in range(50)]
        for value in samples:
            words = codec.encode(reg, value)
            assert len(words) == 2 and all(0 <= w <= 0xFFFF for w in words)
            assert codec.decode(reg, words) == pytest.approx(value, rel=1e-6, abs=1e-6)
        return
    lo, hi = RAW_RANGES[type_]
    for value in [lo, hi, 0, 1, -1 if lo < 0 else 2] + [rng.randint(lo, hi) for _ in range(200)]:
        words = codec.encode(reg, value)
        assert len(words) == reg.size and all(0 <= w <= 0xFFFF for w in words)
        assert codec.decode(reg, words) == value


def test_word_order_puts_the_high_word_first_or_last() -> None:
    assert codec.encode(_reg("S32", "big"), -2) == [0xFFFF, 0xFFFE]
    assert codec.encode(_reg("S32", "little"), -2) == [0xFFFE, 0xFFFF]
    assert codec.encode(_reg("U32", "big"), 0x12345678) == [0x1234, 0x5678]
    assert codec.decode(_reg("U32", "little"), [0x5678, 0x1234]) == 0x12345678
    assert codec.decode(_reg("U64", "big"), [0, 0, 1, 2]) == 0x10002
    assert codec.encode(_reg("F32"), 1.0) == [0x3F80, 0x0000]
    assert codec.decode(_reg("S16"), [0x8000]) == -32768


@pytest.mark.parametrize("type_", ["U16", "S16", "U32", "S32"])
def test_scale_and_offset_round_trip(type_: str) -> None:
    rng = random.Random(type_)
    temperature = _reg(type_, scale=0.1, offset=-100)  # Deye battery temperature style
    for _ in range(200):
        lo = -100 if type_.startswith("U") else -1000
        value = round(rng.uniform(lo, 1000), 1)
        assert codec.decode(temperature, codec.encode(temperature, value)) == pytest.approx(value)
    energy = _reg(type_, scale=100)  # 0.1 kWh counts → Wh
    assert codec.encode(energy, 123400)[-1] == 1234
    assert codec.decode(energy, codec.encode(energy, 123400)) == 123400
    assert codec.decode(temperature, codec.encode(temperature, 25.0)) == 25.0
    assert codec.encode(_reg("U16", scale=0.1, offset=-100), 25.0) == [1250]


def test_encode_rounds_to_the_register_resolution() -> None:
    current = _reg("U16", scale=1, min=0, max=185)
    assert codec.encode(current, 99.6) == [100]


@pytest.mark.parametrize(
    ("register", "value", "reason"),
    [
        (_reg("U16", min=0, max=185, unit="A"), 186, "186 A outside 0..185"),
        (_reg("U16", min=10, max=100), 5, "outside 10..100"),
        (_reg("U16"), 70000, "does not fit U16"),
        (_reg("U16"), -1, "does not fit U16"),
        (_reg("S16", scale=0.1), 4000, "does not fit S16"),
        (_reg("S32"), 2**31, "does not fit S32"),
        (_reg("F32"), 1e40, "does not fit F32"),
        (_reg("U32"), float("nan"), "not a finite number"),
    ],
)
def test_out_of_range_encode_names_the_register(register: Register, value: float, reason: str) -> None:
    with pytest.raises(codec.EncodeError) as info:
        codec.encode(register, value)
    assert str(info.value).startswith(register.name + ":")
    assert reason in str(info.value)


def test_decode_refuses_the_wrong_number_of_words() -> None:
    with pytest.raises(ValueError, match="U32 needs 2 words, got 3"):
        codec.decode(_reg("U32"), [1, 2, 3])


def test_split_register_round_trips_through_its_addresses() -> None:
    total = Register(name="total", address=78, table="holding", type="U32", scale=100,
                     word_order="little", word_addresses=(78, 80))
    words = codec.encode(total, 6_553_600 + 12_300)  # 65536 + 123 counts of 0.1 kWh
    assert words == [123, 1]  # low word (78) first, high word (80) second
    assert codec.decode(total, words) == 6_553_600 + 12_300
    assert (total.addresses, total.end, total.span) == ((78, 80), 81, 3)


def test_decode_block_places_every_register_and_skips_partial_ones() -> None:
    total = Register(name="total", address=78, table="holding", type="U32", scale=100,
                     word_order="little", word_addresses=(78, 80))
    freq = Register(name="freq", address=79, table="holding", type="U16", scale=0.01)
    counter = Register(name="counter", address=81, table="holding", type="U32", word_order="little")
    words = [5, 5000, 1, 0x0001, 0x0002]  # 78..82
    assert codec.decode_block([total, freq, counter], 78, words) == {
        "total": (65536 + 5) * 100, "freq": 50.0, "counter": 0x00020001,
    }
    # a block that ends inside a register (or misses a split word) does not decode it
    assert codec.decode_block([total, freq, counter], 78, words[:3]) == {"total": (65536 + 5) * 100, "freq": 50.0}
    assert codec.decode_block([total, freq], 79, words[1:]) == {"freq": 50.0}


def test_semantic_applies_role_and_term_signs_and_missing_parts() -> None:
    regs = {n: Register(name=n, address=i, table="holding", type="S32", unit="W")
            for i, n in enumerate(["ac", "meter", "pv1", "pv2"])}
    regmap = RegisterMap(
        family="t", name="t", path=Path("t.yaml"), protocol=Protocol(), registers=regs,
        roles={
            "grid_w": RoleSpec(("meter",), -1),
            "load_w": RoleSpec(("ac", "meter"), 1, (1, -1)),
            "pv_w": RoleSpec(("pv1", "pv2")),
        },
        controls={}, unreadable={},
    )
    values: dict[str, float | None] = {"ac": 2000.0, "meter": -500.0, "pv1": 100.0, "pv2": 50.5}
    assert codec.semantic(regmap, values) == {"grid_w": 500.0, "load_w": 2500.0, "pv_w": 150.5}
    values["pv2"] = None
    assert codec.semantic(regmap, values)["pv_w"] is None
    del values["meter"]
    assert codec.semantic(regmap, values)["load_w"] is None


def test_f32_words_are_ieee754() -> None:
    reg = _reg("F32", "little")
    words = codec.encode(reg, 230.5)
    assert struct.unpack(">f", words[1].to_bytes(2, "big") + words[0].to_bytes(2, "big"))[0] == 230.5


def test_a_written_value_must_be_a_number_and_one_of_the_enum() -> None:
    pattern = Register("pattern", 10, "holding", "U16", access="rw", enum={0: "battery_first", 1: "load_first"})
    assert codec.encode_write(pattern, 1) == [1]
    for bad, reason in [(7, r"got 7, allowed: 0 \(battery_first\), 1 \(load_first\)"), (0.5, "got 0.5, allowed"),
                        (True, "got True, expected a number"), ("1", "got '1', expected a number"),
                        (float("nan"), "pattern: nan is not a finite number"),
                        (float("inf"), "pattern: inf is not a finite number"),
                        (float("-inf"), "pattern: -inf is not a finite number"),
                        (10**400, "pattern: 10+ is not a finite number")]:  # beyond any float
        with pytest.raises(codec.EncodeError, match=reason):
            codec.encode_write(pattern, bad)  # type: ignore[arg-type]
    assert codec.encode(pattern, 7) == [7]  # the simulator may hold an implausible state


def test_the_map_names_what_a_read_or_write_may_not_touch() -> None:
    regs = {"soc": Register("soc", 1, "input", "U16"), "cmd": Register("cmd", 2, "holding", "U16", access="w")}
    regmap = RegisterMap("fam", "Family", Path("fam.yaml"), Protocol(), regs, {}, {}, {})
    assert regmap.register("soc", "read") is regs["soc"] and regmap.register("cmd", "write") is regs["cmd"]
    for name, access, message, unknown in [
        ("soc", "write", "register 'soc' is read-only (access 'r')", False),
        ("cmd", "read", "register 'cmd' is write-only (access 'w')", False),
        ("nope", "read", "unknown register 'nope' in map fam", True),
        (["soc"], "write", "unknown register ['soc'] in map fam", True),
    ]:
        with pytest.raises(RegisterAccessError, match=re.escape(message)) as exc:
            regmap.register(name, access)  # type: ignore[arg-type]
        assert exc.value.unknown is unknown


# --- readings: scale-factor registers, invalid markers, magnitudes -----------------------------


def test_a_scale_factor_register_scales_the_value_it_belongs_to() -> None:
    """SunSpec: W = 1234 with W_SF = -1 reads 123.4 W; W_SF = 2 reads 123400 W."""
    value = _reg("S16", name="w", scale_factor="w_sf", address=100)
    factor = Register(name="w_sf", address=101, table="holding", type="S16")
    for exponent, expected in ((-1, 123.4), (2, 123400.0), (0, 1234.0)):
        words = [1234, exponent & 0xFFFF]
        assert codec.decode_block([value, factor], 100, words) == {"w": expected, "w_sf": exponent}
    negative = codec.decode_block([value, factor], 100, [(-1234) & 0xFFFF, (-2) & 0xFFFF])
    assert negative["w"] == -12.34


def test_a_value_without_its_scale_factor_or_with_an_invalid_one_reads_none() -> None:
    value = _reg("U16", name="a", scale_factor="a_sf", address=100)
    factor = Register(name="a_sf", address=101, table="holding", type="S16", invalid=(0x8000,))
    assert codec.decode_block([value], 100, [500]) == {"a": None}  # its factor is not in the block
    assert codec.decode_block([value, factor], 100, [500, 0x8000]) == {"a": None, "a_sf": None}


def test_invalid_markers_read_none_in_the_registers_word_order() -> None:
    meter = _reg("S32", name="meter", invalid=(0x7FFFFFFF,))  # Huawei: I32 0x7FFFFFFF is no value
    assert codec.decode_block([meter], 100, [0x7FFF, 0xFFFF]) == {"meter": None}
    assert codec.decode_block([meter], 100, [0xFFFF, 0xFFFF]) == {"meter": -1.0}
    sungrow = _reg("S32", "little", name="meter", invalid=(0x7FFFFFFF,))  # low word first
    assert codec.decode_block([sungrow], 100, [0xFFFF, 0x7FFF]) == {"meter": None}
    assert codec.reading(meter, [0, 5]) == 5.0


def test_an_absolute_register_reads_its_magnitude() -> None:
    """Huawei 37119 (energy fed to the grid): some meters report it negative."""
    exported = _reg("S32", name="exported", scale=10.0, absolute=True)
    assert codec.reading(exported, [0xFFFF, 0xFF38]) == 2000.0  # -200 x 10 Wh
    assert codec.reading(exported, [0, 200]) == 2000.0
