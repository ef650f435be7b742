"""Scanning the port: the right map and unit id among the shipped maps, silence, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.commission import CommissionError
from device.commission.report import Found, Line, Probe
from device.commission.scan import choose
from device.modbus.registermap import load_map
from device.simulator import Simulator
from device.simulator.image import RegisterImage
from tests.device.commission.conftest import (
    FAST, MAPS, SILENT_S, invoke, problems, run_inverter, shipped, simulator,
)


def answer(tried: str, family: str) -> str:
    """What a map of another family gets: where the simulated inverter has the tried map's
    identity address (inside its register span: the same vendor's other table, or another vendor
    whose span happens to cover it) the identity is refused ("other_family"); where it has no such
    address, an exception. A SunSpec map turns every base that answers no ``SunS`` (an exception
    or other words) into one refusal: "no 'SunS' marker at 40000, 0, 50000"."""
    tried_map = shipped(tried)
    if tried_map.sunspec:
        return "other_family"
    check, span = tried_map.identity[0], RegisterImage(shipped(family)).span
    low, high = span.get(check.table, (1, 0))
    return "other_family" if low <= check.address and check.address + check.words - 1 <= high else "exception"


@pytest.mark.parametrize("family", MAPS)
async def test_scan_finds_the_map_among_the_shipped_maps(family: str) -> None:
    # unit 5: the main unit id of every map moves there, clear of the further devices' own
    # (SMA's registers at 3, Fronius's meter at 200); passing over silent unit ids is
    # test_a_silent_unit_id_is_passed_over's (every probe here answers: no timeout fires)
    sim, port = await simulator(family, unit_id=5)
    try:
        report = await run_inverter(port, units=[5], write="skip")
    finally:
        await sim.close()
    assert report.ok, problems(report)
    assert report.found is not None
    assert (report.found.regmap.family, report.found.unit_id) == (family, 5)
    outcomes = {(p.unit_id, p.map): p.outcome for p in report.probes}
    assert outcomes == {(5, m): "fits" if m == family else answer(m, family) for m in MAPS}
    assert sim.stats.violations == 0  # strictly one request at a time, gap kept


async def test_a_silent_unit_id_is_passed_over() -> None:
    """One worker per line setting asks unit id after unit id: after the timeouts at a silent
    one, the next is asked once a late reply would be over, and the inverter is found there."""
    sim, port = await simulator("deye_hybrid_1p", unit_id=5)
    try:
        report = await run_inverter(port, maps=["deye_hybrid_1p", "sungrow_sh_hybrid"], units=[1, 5],
                                    write="skip")
    finally:
        await sim.close()
    assert report.ok, problems(report)
    assert report.found is not None and (report.found.regmap.family, report.found.unit_id) == ("deye_hybrid_1p", 5)
    assert [(p.unit_id, p.map, p.outcome) for p in report.probes] == [
        (1, "deye_hybrid_1p", "no_reply"), (1, "sungrow_sh_hybrid", "no_reply"),
        (5, "deye_hybrid_1p", "fits"), (5, "sungrow_sh_hybrid", "exception")]
    assert sim.stats.violations == 0


async def test_implausible_identifying_values_are_not_a_fit(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.image.set("run_state", 9)  # no such state: this is not (a working) Deye
    report = await run_inverter(port, units=[1])  # every map asked where the Deye answers
    probe = next(p for p in report.probes if p.map == "deye_hybrid_1p")
    assert probe.outcome == "implausible" and "run_state 9: unknown code 9" in probe.detail
    assert report.problems == ["scan: something answers at unit 1 but no map tried reads plausible values there"]


async def test_the_port_that_cannot_be_opened_stops_at_once(tmp_path: Path) -> None:
    with pytest.raises(CommissionError, match=r"cannot open serial://.*missing"):
        await run_inverter(f"serial://{tmp_path}/missing")


async def test_a_wrong_unit_id_answers_nothing_and_is_reported() -> None:
    sim, port = await simulator("deye_hybrid_1p", unit_id=5)
    try:
        report = await run_inverter(port, units=[1], scan_timeout_s=SILENT_S)
        result = await invoke("--port", port, "--map", "deye_hybrid_1p", "--scan-units", "1",
                              "--scan-timeout", str(SILENT_S), "--scan-bauds", str(FAST))
    finally:
        await sim.close()
    assert not report.ok and report.found is None
    assert {p.outcome for p in report.probes} == {"no_reply"}
    assert report.problems == ["scan: nothing answered (check wiring, A/B polarity, termination, "
                               "unit id and baud rate)"]
    assert result.exit_code == 1
    assert "no reply" in result.stdout and "FAILED" in result.stdout
    assert "commissioning failed: scan: nothing answered" in result.stderr


async def test_only_garbled_replies_hint_at_the_line_settings(deye: tuple[Simulator, str]) -> None:
    sim, port = deye
    sim.faults.corrupt_crc = 1.0  # every reply garbled, as at a wrong baud rate or parity
    report = await run_inverter(port, maps=["deye_hybrid_1p"], write="skip")
    assert [p.outcome for p in report.probes] == ["error"]
    assert report.problems == [f"scan: only garbled or foreign replies (at {FAST} 8N1): another baud rate "
                               "or parity? another master on the bus?"]


def test_choose_refuses_to_guess_between_units_or_maps(tmp_path: Path) -> None:
    deye = shipped("deye_hybrid_1p")
    twin_path = tmp_path / "deye_twin.yaml"
    twin_path.write_text(deye.path.read_text(encoding="utf-8"))
    twin = load_map(twin_path)
    line = Line.of(deye.protocol)

    def fits(ref: str, unit: int) -> Probe:
        return Probe(ref, unit, line, "fits", "")

    assert choose([fits("deye_hybrid_1p", 1), fits("deye_hybrid_1p", 4)], [deye], None) == (
        "inverters answer at several unit ids (1, 4); choose one with --scan-units N")
    both = [fits("deye_hybrid_1p", 1), fits(str(twin_path), 1)]
    assert choose(both, [deye, twin], None) == (
        f"several maps fit (deye_hybrid_1p, {twin_path}); choose one with --map NAME")
    found = choose(both, [deye, twin], "deye_hybrid_1p")  # the configured map wins a tie
    assert isinstance(found, Found)
    assert (found.regmap.family, found.unit_id, found.also_fits) == ("deye_hybrid_1p", 1, (str(twin_path),))


async def test_a_three_phase_deye_is_not_taken_for_the_single_phase_map() -> None:
    """Its registers 59 and 184 read plausibly (bridged zeros): only the device type tells them apart."""
    sim, port = await simulator("deye_hybrid_3p")
    try:
        report = await run_inverter(port, maps=["deye_hybrid_1p"])
    finally:
        await sim.close()
    assert report.found is None
    [probe] = report.probes
    assert probe.outcome == "other_family"
    assert report.problems == [
        "scan: the inverter at unit 1 is of no family tried: not a Deye / Sunsynk single-phase hybrid "
        "(SG01LP1 family) (map deye_hybrid_1p): device_type (holding 0) reads 5 (three-phase LV hybrid "
        "(map deye_hybrid_3p)), expected 3 (single-phase hybrid) or 768 (single-phase hybrid); nothing written"]
    assert sim.stats.functions.get(6, 0) + sim.stats.functions.get(16, 0) == 0
