"""Register maps: every shipped map is sound, and every kind of broken map is refused clearly."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from device.modbus import codec
from device.modbus.blocks import plan_blocks
from device.modbus.mapmodel import MODES, REQUIRED_ROLES, RegisterMap
from device.modbus.registermap import MAPS_DIR, MapError, available_maps, load_map

SHIPPED = sorted(MAPS_DIR.glob("*.yaml"))


@pytest.fixture(params=SHIPPED, ids=[p.stem for p in SHIPPED])
def shipped(request: pytest.FixtureRequest) -> RegisterMap:
    return load_map(request.param)


def test_at_least_two_families_are_shipped() -> None:
    assert len(available_maps()) >= 2
    assert {"deye_hybrid_1p", "huawei_sun2000_luna2000"} <= set(available_maps())


def test_shipped_map_has_roles_controls_and_sources(shipped: RegisterMap) -> None:
    assert set(REQUIRED_ROLES) <= set(shipped.roles)
    assert set(shipped.controls) == set(MODES)
    assert shipped.sources, "a shipped map must cite its sources"
    assert shipped.family == shipped.path.stem
    for mode in ("charge", "discharge"):
        assert "power_w" in shipped.controls[mode].params


def test_shipped_map_names_its_identity(shipped: RegisterMap) -> None:
    """Every shipped map proves its family before anything is written; its own sample passes."""
    assert shipped.identity, f"{shipped.family}: no identity words"
    for check in shipped.identity:
        assert check.matches(check.found(check.sample_words()))


def test_identity_refuses_the_other_families_codes() -> None:
    one, three = (load_map(m).identity[0] for m in ("deye_hybrid_1p", "deye_hybrid_3p"))
    assert not one.matches(three.found(three.sample_words()))
    assert not three.matches(one.found(one.sample_words()))
    assert one.describe(1280) == "1280 (three-phase LV hybrid (map deye_hybrid_3p))"
    huawei = load_map("huawei_sun2000_luna2000").identity[0]
    words = [int.from_bytes(b"SU", "big"), int.from_bytes(b"N2", "big"), int.from_bytes(b"00", "big"),
             int.from_bytes(b"0-", "big"), int.from_bytes(b"5K", "big")] + [0x2020] * 10
    assert huawei.found(words) == "SUN2000-5K" and huawei.matches("SUN2000-5K")
    assert not huawei.matches("SUN600-")


def test_goodwe_and_sungrow_identities() -> None:
    """GoodWe: the family's tag inside the serial number (goodwe's ET_MODEL_TAGS); Sungrow: the
    device type code, older SH*K models named but refused (their forced power is in other units)."""
    goodwe = load_map("goodwe_et_hybrid").identity[0]
    serial = b"95000ETU224W0001"
    words = [int.from_bytes(serial[i:i + 2], "big") for i in range(0, 16, 2)]
    assert goodwe.found(words) == "95000ETU224W0001" and goodwe.matches("95000ETU224W0001")
    assert goodwe.matches("95048EHU123W0002") and goodwe.matches(goodwe.found(goodwe.sample_words()))
    assert not goodwe.matches("95000DTU224W0001")  # a grid-tied DT: other registers
    assert goodwe.expected().startswith("a text containing 'ETU' or 'ETL'")
    sungrow = load_map("sungrow_sh_hybrid").identity[0]
    assert sungrow.matches(0x0E03) and sungrow.matches(0x0D0F)  # SH10RT, SH5.0RS
    assert not sungrow.matches(0x0D09)
    assert sungrow.describe(0x0D09) == "3337 (SH5K-20 (older SH*K series))"


def test_huawei_meter_reads_as_the_reference_library_does() -> None:
    """37113 as a plain I32 (+ feed-in, our grid_w sign -1), 37119 as its magnitude (meters that
    report it negative), 0x7FFFFFFF as no value."""
    huawei = load_map("huawei_sun2000_luna2000")
    regs = [huawei.registers[n] for n in ("meter_active_power", "grid_exported_energy", "grid_imported_energy")]
    words = [0xFFFF, 0xFC18, 0xFFFF, 0xFF38, 0x7FFF, 0xFFFF]  # -1000 W, -200 (x 10 Wh), no value
    values = codec.decode_block(regs, 37113, [*words[:2], 0, 0, 0, 0, *words[2:]])
    assert values == {"meter_active_power": -1000.0, "grid_exported_energy": 2000.0, "grid_imported_energy": None}
    roles = codec.semantic(huawei, {**values, "active_power": 0.0})
    assert roles["grid_w"] == 1000.0  # importing 1 kW
    assert (huawei.protocol.timeout_s, huawei.protocol.connect_pause_s) == (10.0, 1.0)


def test_every_control_encodes_at_its_param_limits(shipped: RegisterMap) -> None:
    for control in shipped.controls.values():
        corners = [{p: s.min for p, s in control.params.items()}, {p: s.max for p, s in control.params.items()}]
        for args in corners:
            for write in control.writes:
                reg = shipped.registers[write.register]
                assert reg.writable
                readings = dict.fromkeys(write.inputs, 50.0)  # a battery voltage, a SOC, a flags word
                if write.divide_by is not None and shipped.registers[write.divide_by].unit == "W":
                    # a rated power (GoodWe 35001, SunSpec WChaMax): at least what the control may ask
                    readings[write.divide_by] = max(spec.max for spec in control.params.values())
                if write.scale_factor is not None:  # SunSpec: the device's exponent, here 10^0
                    readings[write.scale_factor] = 0.0
                    reg = reg.scaled(0)
                words = codec.encode(reg, write.resolve(args, readings))
                assert len(words) == reg.size
                assert codec.decode(reg, words) == pytest.approx(write.resolve(args, readings), abs=abs(reg.scale))


def test_every_role_register_decodes(shipped: RegisterMap) -> None:
    values = {}
    for role, spec in shipped.roles.items():
        for name, _ in spec.terms:
            reg = shipped.registers[name]
            assert reg.readable, f"{role}: {name}"
            values[name] = codec.decode(reg, [1] * reg.size)
    roles = codec.semantic(shipped, values)
    assert all(roles[role] is not None for role in shipped.roles)


def test_deye_split_counter_keeps_frequency_between_its_words() -> None:
    deye = load_map("deye_hybrid_1p")
    total = deye.registers["total_grid_import"]
    assert total.addresses == (78, 80) and total.span == 3
    assert deye.registers["grid_frequency"].addresses == (79,)
    # low word 1234 at 78, high word 1 at 80, 0.1 kWh per count
    assert codec.decode(total, [1234, 1]) == (65536 + 1234) * 100


def test_sign_conventions_of_shipped_maps() -> None:
    """Vendors' raw readings → ours: grid_w > 0 import, battery_w > 0 discharge."""
    deye = load_map("deye_hybrid_1p")
    deye_raw = {"grid_power": 1500.0, "battery_power": -800.0}  # Deye: buying, charging
    roles = codec.semantic(deye, {**dict.fromkeys(deye.registers, 0.0), **deye_raw})
    assert roles["grid_w"] == 1500 and roles["battery_w"] == -800

    huawei = load_map("huawei_sun2000_luna2000")
    # Huawei: meter -1500 = taking from the grid, storage +800 = charging, inverter AC -300
    huawei_raw = {"meter_active_power": -1500.0, "battery_power": 800.0, "active_power": -300.0}
    roles = codec.semantic(huawei, {**dict.fromkeys(huawei.registers, 0.0), **huawei_raw})
    assert roles["grid_w"] == 1500
    assert roles["battery_w"] == -800
    assert roles["load_w"] == 1200  # 1500 from the grid, 300 of it into the battery


def test_unknown_shipped_name_lists_the_shipped_maps() -> None:
    with pytest.raises(MapError, match=r"shipped maps: .*deye_hybrid_1p"):
        load_map("no_such_inverter")


# --- broken maps --------------------------------------------------------------------------


def _valid() -> dict[str, Any]:
    """A minimal map the loader accepts; each test breaks one thing."""
    return {
        "family": "test",
        "name": "Test inverter",
        "protocol": {"word_order": "big"},
        "registers": [
            {"name": "soc", "address": 0, "table": "holding", "type": "U16", "unit": "%"},
            {"name": "bat", "address": 1, "table": "holding", "type": "S16", "unit": "W"},
            {"name": "pv", "address": 2, "table": "holding", "type": "U16", "unit": "W"},
            {"name": "grid", "address": 3, "table": "holding", "type": "S32", "unit": "W"},
            {"name": "load", "address": 5, "table": "holding", "type": "U16", "unit": "W"},
            {"name": "mode", "address": 10, "table": "holding", "type": "U16", "access": "rw",
             "min": 0, "max": 3},
            {"name": "power", "address": 11, "table": "holding", "type": "U16", "unit": "W",
             "access": "rw", "min": 0, "max": 5000},
        ],
        "roles": {"soc_pct": "soc", "battery_w": "bat", "pv_w": "pv", "grid_w": "grid", "load_w": "load"},
        "controls": {
            "self_consumption": {"writes": [{"register": "mode", "value": 0}]},
            "charge": {"params": {"power_w": {"min": 0, "max": 5000}},
                       "writes": [{"register": "mode", "value": 1}, {"register": "power", "param": "power_w"}]},
            "discharge": {"params": {"power_w": {"min": 0, "max": 5000}},
                          "writes": [{"register": "mode", "value": 2}, {"register": "power", "param": "power_w"}]},
            "hold": {"writes": [{"register": "mode", "value": 3}]},
        },
    }


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _reg(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in data["registers"] if r["name"] == name)


def test_minimal_map_loads(tmp_path: Path) -> None:
    regmap = load_map(_write(tmp_path, _valid()))
    assert regmap.controls["charge"].params["power_w"].max == 5000


def _unknown_type(d: dict[str, Any]) -> None:
    _reg(d, "pv")["type"] = "U24"


def _unknown_key(d: dict[str, Any]) -> None:
    _reg(d, "pv")["gain"] = 10


def _duplicate_name(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "pv", "address": 40, "table": "holding", "type": "U16"})


def _overlap(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "extra", "address": 4, "table": "holding", "type": "U16"})


def _split_overlap(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "total", "addresses": [20, 2], "table": "holding", "type": "U32"})


def _split_hits_word(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "total", "addresses": [5, 30], "table": "holding", "type": "U32"})


def _split_wrong_count(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "total", "addresses": [20, 22, 24], "table": "holding", "type": "U32"})


def _address_and_addresses(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "total", "address": 20, "addresses": [20, 22], "table": "holding",
                           "type": "U32"})


def _write_read_only(d: dict[str, Any]) -> None:
    d["controls"]["hold"]["writes"].append({"register": "pv", "value": 0})


def _role_unknown_register(d: dict[str, Any]) -> None:
    d["roles"]["load_w"] = {"sum": ["load", "house"]}


def _role_bad_unit(d: dict[str, Any]) -> None:
    d["roles"]["load_w"] = "soc"


def _indistinguishable(d: dict[str, Any]) -> None:
    d["controls"]["hold"]["writes"] = [{"register": "mode", "value": 0}]


def _subset_controls(d: dict[str, Any]) -> None:
    # hold's literal writes are a subset of charge's: in charge, the inverter would also be in hold
    d["controls"]["hold"]["writes"] = [{"register": "power", "value": 100}]


def _inside_unreadable(d: dict[str, Any]) -> None:
    d["unreadable"] = {"holding": [[4, 8]]}


def _split_spans_write_only(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "cmd", "address": 21, "table": "holding", "type": "U16", "access": "w"})
    d["registers"].append({"name": "total", "addresses": [20, 22], "table": "holding", "type": "U32"})


def _param_out_of_register_range(d: dict[str, Any]) -> None:
    d["controls"]["charge"]["params"]["power_w"]["max"] = 9000


def _literal_out_of_type(d: dict[str, Any]) -> None:
    _reg(d, "mode").pop("max")
    d["controls"]["hold"]["writes"] = [{"register": "mode", "value": 70000}]


def _input_register_written(d: dict[str, Any]) -> None:
    _reg(d, "mode")["table"] = "input"


def _missing_control(d: dict[str, Any]) -> None:
    del d["controls"]["hold"]


def _split_writable(d: dict[str, Any]) -> None:
    d["registers"].append({"name": "total", "addresses": [20, 22], "table": "holding", "type": "U32",
                           "access": "rw"})


def _interleaved_splits(d: dict[str, Any]) -> None:
    # each fits a 4-address read alone, but their spans interleave into one 6-address cluster
    d["protocol"]["max_block"] = 4
    d["registers"].append({"name": "a", "addresses": [20, 23], "table": "input", "type": "U32"})
    d["registers"].append({"name": "b", "addresses": [22, 25], "table": "input", "type": "U32"})


def _role_bad_sign(d: dict[str, Any]) -> None:
    d["roles"]["grid_w"] = {"register": "grid", "sign": 2}


def _nan_scale(d: dict[str, Any]) -> None:
    _reg(d, "pv")["scale"] = float("nan")  # YAML .nan: every reading of it would be NaN


def _infinite_limit(d: dict[str, Any]) -> None:
    d["controls"]["charge"]["params"]["power_w"]["max"] = float("inf")


def _timeout_without_refresh(d: dict[str, Any]) -> None:
    d["protocol"]["control_timeout_s"] = 60


def _refresh_not_below_timeout(d: dict[str, Any]) -> None:
    d["protocol"]["control_timeout_s"] = 60
    for mode in ("charge", "discharge", "hold"):
        d["controls"][mode]["refresh_s"] = 30
    d["controls"]["discharge"]["refresh_s"] = 60


def _refresh_self_consumption(d: dict[str, Any]) -> None:
    d["controls"]["self_consumption"]["refresh_s"] = 30


def _refresh_not_a_number(d: dict[str, Any]) -> None:
    d["controls"]["hold"]["refresh_s"] = "30s"


def _nan_write(d: dict[str, Any]) -> None:
    d["controls"]["hold"]["writes"][0]["value"] = float("nan")


def _bool_offset(d: dict[str, Any]) -> None:
    _reg(d, "pv")["offset"] = True


def _identity(**entry: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        data["identity"] = [{"name": "kind", "table": "holding", "address": 100, "words": 1, **entry}]
    return mutate


def _identity_without_address(data: dict[str, Any]) -> None:
    _identity(values={3: "hybrid"})(data)
    del data["identity"][0]["address"]


def _identity_point_without_sunspec(data: dict[str, Any]) -> None:
    _identity(prefixes=["SMA"], words=16)(data)
    del data["identity"][0]["address"]
    data["identity"][0].update(model=1, model_offset=2)


def _identity_on_write_only(data: dict[str, Any]) -> None:
    data["registers"].append({"name": "cmd", "address": 100, "table": "holding", "type": "U16", "access": "w"})
    _identity(values={3: "hybrid"})(data)


def _register_key(name: str, **entry: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        _reg(data, name).update(entry)
    return mutate


def _scale_factor_register(**entry: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        data["registers"].append({"name": "pv_sf", "address": 20, "table": "holding", "type": "S16", **entry})
        _reg(data, "pv")["scale_factor"] = "pv_sf"
    return mutate


def _sunspec(models: Any = None, **point: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        data["sunspec"] = {"bases": [40000], "models": models if models is not None else [{"id": 103, "length": 50}]}
        register = _reg(data, "pv")
        del register["address"]
        register.update(point)
    return mutate


def _devices(devices: Any, **register: Any) -> Any:
    """A further device behind the link (``protocol.devices``), and ``pv`` moved as given."""
    def mutate(data: dict[str, Any]) -> None:
        data["protocol"]["devices"] = devices
        _reg(data, "pv").update(register)
    return mutate


def _meter_chain(chain: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        _sunspec(model=103, model_offset=14)(data)
        data["protocol"]["devices"] = {"meter": 200}
        data["sunspec"]["devices"] = chain
    return mutate


BROKEN = {
    # name: (mutation, entry named in the error, reason named in the error)
    "device unknown": (_devices({"meter": 200}, device="metre"), "registers[pv]",
                       "device 'metre' is not in protocol.devices (meter)"),
    "device without devices": (_register_key("pv", device="meter"), "registers[pv]",
                               "device 'meter' is not in protocol.devices (none declared)"),
    "device unit taken": (_devices({"meter": 1}), "protocol.devices.meter",
                          "unit id 1 must be 1..247 and differ from the map's other unit ids [1]"),
    "device unit twice": (_devices({"meter": 200, "other": 200}), "protocol.devices.other",
                          "unit id 200 must be 1..247 and differ from the map's other unit ids [1, 200]"),
    "device name": (_devices({"the meter": 200}), "protocol.devices", "device name 'the meter' must be a word"),
    "devices not a mapping": (_devices([200]), "protocol.devices", "expected a mapping of device name to unit id"),
    "device chain of no device": (_meter_chain({"inverter2": {"models": [{"id": 203, "length": 105}]}}),
                                  "sunspec.devices", "unknown key 'inverter2'; allowed: meter"),
    "device point without its chain": (_devices({"meter": 200}, device="meter",
                                                 model=203, model_offset=18),
                                       "registers[pv]", "need a 'sunspec' chain for its device (meter)"),
    "device chain empty": (_meter_chain({"meter": {"models": []}}), "sunspec.devices.meter.models",
                           "expected a non-empty list"),
    "scale factor unknown": (_register_key("pv", scale_factor="pv_sf"), "registers[pv]",
                             "scale_factor 'pv_sf' is not a register of this map"),
    "scale factor not S16": (_scale_factor_register(type="U16"), "registers[pv]",
                             "scale_factor 'pv_sf' must be a readable, unscaled S16 register of the holding table "
                             "of the same device"),
    "scale factor scaled": (_scale_factor_register(scale=0.1), "registers[pv]", "unscaled S16"),
    "invalid beyond type": (_register_key("pv", invalid=[0x10000]), "registers[pv]",
                            "must list raw word values 0..65535"),
    "absolute not a flag": (_register_key("pv", absolute="yes"), "registers[pv]", "absolute 'yes' must be true or false"),
    "writable absolute": (_register_key("power", absolute=True), "registers[power]",
                          "a writable register cannot be absolute or have invalid markers"),
    "point without sunspec": (_register_key("pv", model=103, model_offset=14), "registers[pv]",
                              "'model' and 'model_offset' need a 'sunspec' chain for its device (the main one)"),
    "point outside its model": (_sunspec(model=103, model_offset=52), "registers[pv]",
                                "model_offset 52 must be 2..51 (model 103 has 50 registers after its ID and length)"),
    "point in no model": (_sunspec(model=124, model_offset=2), "registers[pv]", "model 124 is not in sunspec.models (103)"),
    "point with an address": (_sunspec(model=103, model_offset=14, address=7), "registers[pv]",
                              "a SunSpec point takes 'model' and 'model_offset', not an address"),
    "model listed twice": (_sunspec([{"id": 103, "length": 50}, {"id": 103, "length": 50}], model=103, model_offset=14),
                           "sunspec.models[1]", "model 103 listed twice"),
    "model id end marker": (_sunspec([{"id": 65535, "length": 50}], model=103, model_offset=14),
                            "sunspec.models[0]", "id 65535 must be 1..65534"),
    "identity contains too long": (_identity(contains=["ETU"]), "identity[kind]", "contains must be a non-empty list"),
    "NaN scale": (_nan_scale, "registers[pv]", "scale nan must be a finite number"),
    "infinite param limit": (_infinite_limit, "controls.charge.params.power_w", "max inf must be a finite number"),
    "timeout without refresh": (_timeout_without_refresh, "controls.charge",
                                "forgets a forced control after protocol.control_timeout_s 60 s: give refresh_s below it"),
    "refresh not below the timeout": (_refresh_not_below_timeout, "controls.discharge.refresh_s",
                                      "60 s is not below protocol.control_timeout_s 60 s"),
    "refresh on self-consumption": (_refresh_self_consumption, "controls.self_consumption.refresh_s",
                                    "self_consumption is the inverter's own mode"),
    "refresh not a number": (_refresh_not_a_number, "controls.hold.refresh_s", "got '30s'; allowed: 1 to 3600"),
    "identity without address": (_identity_without_address, "identity[kind]",
                                 "missing key 'address' (or 'model' and 'model_offset' on a SunSpec device)"),
    "identity point without sunspec": (_identity_point_without_sunspec, "identity[kind]",
                                       "'model' and 'model_offset' need a 'sunspec' chain for its device"),
    "NaN written value": (_nan_write, "controls.hold.writes[0]", "value nan must be a finite number"),
    "boolean offset": (_bool_offset, "registers[pv]", "offset True must be a finite number"),
    "unknown type": (_unknown_type, "registers[pv]", "unknown type 'U24'"),
    "unknown key": (_unknown_key, "registers[pv]", "unknown key 'gain'"),
    "duplicate name": (_duplicate_name, "registers[pv]", "duplicate register name"),
    "overlapping registers": (_overlap, "registers[extra]", "address 4 is also a word of grid"),
    "split overlapping": (_split_overlap, "registers[total]", "ascending"),
    "split word on another register": (_split_hits_word, "registers[total]", "address 5 is also a word of load"),
    "split word count": (_split_wrong_count, "registers[total]", "the 2 word addresses of a U32"),
    "address and addresses": (_address_and_addresses, "registers[total]", "exactly one of 'address' or 'addresses'"),
    "control writes read-only": (_write_read_only, "controls.hold.writes[1]", "register 'pv' is read-only"),
    "role unknown register": (_role_unknown_register, "roles.load_w", "unknown register 'house'"),
    "role unit": (_role_bad_unit, "roles.load_w", "needs 'W'"),
    "role sign": (_role_bad_sign, "roles.grid_w", "sign must be 1 or -1"),
    "indistinguishable controls": (_indistinguishable, "controls.hold", "could not tell them apart"),
    "subset controls": (_subset_controls, "controls.hold", "could not tell them apart"),
    "readable inside unreadable": (_inside_unreadable, "registers[grid]", "inside unreadable 4..8"),
    "split spans write-only": (_split_spans_write_only, "registers[total]", "write-only cmd"),
    "param beyond register": (_param_out_of_register_range, "controls.charge.writes[1]", "power: 9000"),
    "literal beyond type": (_literal_out_of_type, "controls.hold.writes[0]", "does not fit U16"),
    "written input register": (_input_register_written, "registers[mode]", "input registers cannot be written"),
    "missing control": (_missing_control, "controls", "missing key 'hold'"),
    "writable split register": (_split_writable, "registers[total]", "split words must be read-only"),
    "identity without values or prefixes": (_identity(), "identity[kind]", "exactly one of 'values'"),
    "identity with both": (_identity(values={1: "a"}, prefixes=["X"]), "identity[kind]", "exactly one of"),
    "identity text both ways": (_identity(prefixes=["X"], contains=["Y"]), "identity[kind]", "exactly one of"),
    "identity code too big": (_identity(values={70000: "a"}), "identity[kind]", "codes 0..65535"),
    "identity empty values": (_identity(values={}), "identity[kind]", "values must map codes"),
    "identity prefix too long": (_identity(prefixes=["SUN2000"]), "identity[kind]", "at most 2 characters"),
    "identity accepted and known": (_identity(values={3: "a"}, known={3: "b"}), "identity[kind]",
                                    "both accepted and known"),
    "identity words": (_identity(words=0, values={1: "a"}), "identity[kind]", "words 0 must be 1 to 32"),
    "identity on write-only": (_identity_on_write_only, "identity[kind]", "overlap the write-only cmd"),
    "unplannable registers": (_interleaved_splits, "registers", "input 20..25 (a, b) cannot be read in one block"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_map_is_refused_with_file_entry_and_reason(tmp_path: Path, case: str) -> None:
    mutate, entry, reason = BROKEN[case]
    data = copy.deepcopy(_valid())
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(MapError) as info:
        load_map(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {entry}:"), message
    assert reason in message, message


def test_register_spanning_more_than_max_block_is_refused(tmp_path: Path) -> None:
    data = _valid()
    data["protocol"]["max_block"] = 10
    data["registers"].append({"name": "total", "addresses": [20, 40], "table": "holding", "type": "U32"})
    with pytest.raises(MapError, match=r"registers\[total\]: spans 21 addresses; protocol.max_block is 10"):
        load_map(_write(tmp_path, data))


def test_not_yaml_and_unreadable_file_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("family: [unclosed", encoding="utf-8")
    with pytest.raises(MapError, match="not valid YAML"):
        load_map(bad)
    with pytest.raises(MapError, match="cannot read"):
        load_map(tmp_path / "missing.yaml")


def test_a_further_device_has_its_own_addresses(tmp_path: Path) -> None:
    """The same address on two devices is no overlap; each device's registers go in its own blocks,
    and each request names its unit id (``None``: the main device's, which an installer may change)."""
    data = _valid()
    data["protocol"]["devices"] = {"meter": 200}
    data["registers"].append({"name": "meter_w", "device": "meter", "address": 0, "table": "holding",
                              "type": "S16", "unit": "W"})
    data["roles"]["grid_w"] = "meter_w"
    regmap = load_map(_write(tmp_path, data))
    assert regmap.registers["meter_w"].address == regmap.registers["soc"].address == 0
    assert regmap.protocol.unit_of("meter") == 200 and regmap.protocol.request_unit("meter") == 200
    assert regmap.protocol.request_unit("") is None
    blocks = plan_blocks(regmap)
    assert [(b.device, b.start, [r.name for r in b.registers]) for b in blocks if b.device == "meter"] == [
        ("meter", 0, ["meter_w"])]
    assert all("meter_w" not in [r.name for r in b.registers] for b in blocks if b.device == "")
