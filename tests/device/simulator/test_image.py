"""The register image: legal addresses, refusals, and role values written through the codec."""

from __future__ import annotations

import struct

import pytest

from device.modbus import codec
from device.modbus.mapmodel import MAIN, RegisterMap
from device.modbus.registermap import available_maps, load_map
from device.simulator.frames import ILLEGAL_ADDRESS, ILLEGAL_VALUE
from device.simulator.image import ModbusError, RegisterImage

MAPS = sorted(available_maps())


@pytest.fixture(params=MAPS)
def regmap(request: pytest.FixtureRequest) -> RegisterMap:
    return load_map(request.param)


ROLES = {"soc_pct": 63.4, "battery_w": -1234.0, "pv_w": 3100.0, "grid_w": -420.0, "load_w": 1446.0,
         "battery_temp_c": 27.5, "inverter_temp_c": 41.0, "energy_import_wh": 123_400.0,
         "energy_export_wh": 56_700.0, "energy_charge_wh": 9_800.0, "energy_discharge_wh": 9_100.0,
         "energy_pv_wh": 88_800.0, "energy_load_wh": 77_700.0}


def test_role_values_read_back_through_the_codec(regmap: RegisterMap) -> None:
    image = RegisterImage(regmap)
    image.set_roles(ROLES)
    values = {name: image.get(name) for name in regmap.registers}
    back = codec.semantic(regmap, values)
    for role, value in back.items():
        if role in ROLES:
            resolution = max(abs(regmap.registers[n].scale) for n in regmap.roles[role].registers)
            assert value == pytest.approx(ROLES[role], abs=resolution), role


def test_split_registers_live_at_their_own_addresses() -> None:
    regmap = load_map("deye_hybrid_1p")
    split = [r for r in regmap.registers.values() if r.addresses != tuple(range(r.address, r.address + r.size))]
    assert split, "the Deye map has split 32-bit counters"
    image = RegisterImage(regmap)
    reg = split[0]
    image.set(reg.name, 6_553_600 * reg.scale)  # raw 0x00640000: high word 100, low word 0
    words = [image.words[reg.table][a] for a in reg.addresses]
    assert sorted(words) == [0, 100]
    assert image.get(reg.name) == pytest.approx(6_553_600 * reg.scale)


def test_reads_bridge_gaps_but_not_the_span_or_unreadable_ranges(regmap: RegisterMap) -> None:
    image = RegisterImage(regmap)
    table = next(iter(image.span))
    low, high = image.span[table]
    with pytest.raises(ModbusError) as exc:
        image.read(table, high, 2)
    assert exc.value.code == ILLEGAL_ADDRESS
    with pytest.raises(ModbusError):
        image.read(table, low - 1, 1)
    owners = image.owner[table]
    identity = {c.address + i for c in regmap.identity if c.table == table for i in range(c.words)}
    gap = next((a for a in range(low, high)
                if a not in owners and a not in identity and not regmap.is_unreadable(table, a)), None)
    if gap is not None:
        assert image.read(table, gap, 1) == [0]
    for first, last in regmap.unreadable.get(table, ()):
        with pytest.raises(ModbusError):
            image.read(table, first - 1, last - first + 2)


def test_writes_need_writable_registers_and_legal_values(regmap: RegisterMap) -> None:
    image = RegisterImage(regmap)
    read_only = next((r for r in regmap.registers.values() if r.table == "holding" and not r.writable), None)
    # a read-only holding register, or (Sungrow: every holding register is a setting) a hole
    target = read_only.address if read_only else next(a for a in range(*image.span["holding"])
                                                        if a not in image.owner["holding"])
    with pytest.raises(ModbusError) as exc:
        image.write(target, [0], read_only.device if read_only else MAIN)
    assert exc.value.code == ILLEGAL_ADDRESS
    bounded = next(r for r in regmap.registers.values() if r.writable and r.max is not None)
    before = image.get(bounded.name)
    above = bounded.max + abs(bounded.scale)  # type: ignore[operator]
    if bounded.type == "F32":  # a float's words (KOSTAL's setpoints): the value itself, one step above max
        words = struct.pack(">f", above)
    else:
        words = round((above - bounded.offset) / bounded.scale).to_bytes(2 * bounded.size, "big")
    ordered = [int.from_bytes(words[i:i + 2], "big") for i in range(0, len(words), 2)]
    with pytest.raises(ModbusError) as exc:
        image.write(bounded.address, ordered if bounded.word_order == "big" else ordered[::-1], bounded.device)
    assert exc.value.code == ILLEGAL_VALUE
    assert image.get(bounded.name) == before  # all or nothing
    assert [r.name for r in image.write(bounded.address, codec.encode(bounded, bounded.max), bounded.device)] == [bounded.name]  # type: ignore[arg-type]
