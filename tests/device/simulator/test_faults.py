"""Fault specifications (CLI) and the per-request decision."""

from __future__ import annotations

import pytest

from device.simulator.faults import FaultError, Faults, parse_fault


def test_a_probability_a_budget_and_options() -> None:
    faults = Faults()
    parse_fault("no_reply:0.05", faults)
    parse_fault("late:next=2,delay=1.25", faults)
    parse_fault("exception:p=0.5,code=6", faults)
    parse_fault("disconnect:down=2", faults)
    assert faults.no_reply == 0.05
    assert faults.next == {"late": 2} and faults.late_delay_s == 1.25
    assert faults.exception == 0.5 and faults.exception_code == 6
    assert faults.disconnect == 1.0 and faults.disconnect_down_s == 2.0  # bare kind: always


def test_defective_and_clear() -> None:
    faults = Faults()
    parse_fault("defective", faults)
    parse_fault("corrupt_crc", faults)
    assert faults.defective and faults.corrupt_crc == 1.0
    faults.clear()
    assert not faults.defective and faults.corrupt_crc == 0.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus", "unknown kind 'bogus'"),
        ("no_reply:1.5", "probability 1.5 outside 0..1"),
        ("no_reply:code=3", "unknown option 'code'"),
        ("late:delay=x", "delay='x' is not a number"),
        ("exception:code=9", "not a Modbus exception code"),
        ("late:next=0", "whole number >= 1"),
        ("defective:1", "takes no arguments"),
    ],
)
def test_bad_specifications_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        parse_fault(spec, Faults())


def test_next_budget_is_consumed_then_probability_rules() -> None:
    faults = Faults(seed=1)
    faults.arm("no_reply", 2)
    assert [faults.fires("no_reply") for _ in range(3)] == [True, True, False]
    faults.no_reply = 1.0
    assert faults.fires("no_reply")
    with pytest.raises(FaultError):
        faults.arm("explode")
