"""`nattery maps check`: every shipped map passes; each kind of unsafe map is named in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from device.cli import main
from device.modbus.mapcheck import check_file
from device.modbus.registermap import available_maps
from tests.device.modbus.test_registermap import _reg, _valid, _write


@pytest.mark.parametrize("family", sorted(available_maps()))
def test_every_shipped_map_passes(family: str) -> None:
    assert check_file(available_maps()[family]) == []


def _safe() -> dict[str, Any]:
    """The loader's minimal map, with what the checker wants on top."""
    data = _valid()
    data["sources"] = ["Test inverter Modbus protocol V1.0"]
    data["identity"] = [{"name": "kind", "table": "holding", "address": 100, "words": 1, "values": {7: "test"}}]
    return data


def test_a_safe_map_passes(tmp_path: Path) -> None:
    assert check_file(_write(tmp_path, _safe())) == []


def test_every_problem_is_one_line_with_file_entry_and_reason(tmp_path: Path) -> None:
    data = _safe()
    del data["identity"], data["sources"]
    del _reg(data, "mode")["max"]
    data["registers"] += [
        {"name": f"t{i}", "address": 20 + i, "table": "holding", "type": "U16", "unit": "hhmm", "access": "rw",
         "min": 0, "max": 2359} for i in range(3)]
    data["controls"]["hold"]["writes"] += [
        {"register": "t0", "value": 0}, {"register": "t1", "value": 2359}, {"register": "t2", "value": 2359}]
    data["controls"]["self_consumption"]["writes"].append({"register": "t1", "value": 1275})
    data["controls"]["charge"]["params"]["power_w"]["max"] = 500_000
    _reg(data, "power").update(type="U32", max=500_000)
    path = _write(tmp_path, data)
    assert check_file(path) == [
        f"{path}: identity: missing: name the words that prove the family (device type, model name)",
        f"{path}: sources: missing: cite the protocol documents the map was checked against",
        f"{path}: registers[mode]: writable without min and max: the firmware's range must be stated",
        f"{path}: controls.self_consumption: t1 1275 is not a time of day (HHMM)",
        f"{path}: controls.charge.params.power_w: 0..500000 W: a power is 0..100000 W",
        f"{path}: controls.hold: programme start times must ascend: t1 2359 then t2 2359",
    ]


def test_a_further_device_needs_registers_and_identity(tmp_path: Path) -> None:
    """A second unit id (a meter) the map names must be read and proved, or it is a typo."""
    data = _safe()
    data["protocol"]["devices"] = {"meter": 200, "spare": 201}
    data["registers"].append({"name": "meter_w", "device": "meter", "address": 0, "table": "holding", "type": "S16"})
    data["identity"].append({"name": "meter_kind", "device": "meter", "table": "holding", "address": 1, "words": 1,
                             "values": {203: "meter"}})
    path = _write(tmp_path, data)
    assert check_file(path) == [
        f"{path}: protocol.devices.spare: unit 201: no readable register of the map is on it",
        f"{path}: protocol.devices.spare: unit 201: no identity words prove it is the device the map expects",
    ]


def test_a_map_the_loader_refuses_is_reported_by_the_loader(tmp_path: Path) -> None:
    data = _safe()
    _reg(data, "pv")["address"] = 0  # on top of soc
    path = _write(tmp_path, data)
    assert check_file(path) == [f"{path}: registers[pv]: holding address 0 is also a word of soc (addresses 0)"]


def test_cli_checks_the_shipped_maps_and_exits_1_on_a_problem(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["maps", "check"])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"{len(available_maps())} maps ok: " + ", ".join(
        p.name for p in available_maps().values()) + "\n"
    data = _safe()
    del data["sources"]
    bad = _write(tmp_path, data)
    result = runner.invoke(main, ["maps", "check", str(available_maps()["deye_hybrid_3p"]), str(bad)])
    assert result.exit_code == 1
    assert result.output == f"{bad}: sources: missing: cite the protocol documents the map was checked against\n"
