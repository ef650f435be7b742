"""The defective-inverter tracker on simulated time: back-off, probes and recovery."""

from __future__ import annotations

import pytest

from device.modbus.defective import DefectiveTracker
from device.modbus.requests import InverterDefective
from tests.simulated_clock import SimulatedClock


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(auto=False)


@pytest.fixture
def tracker(clock: SimulatedClock) -> DefectiveTracker:
    return DefectiveTracker(port="p", defective_after=3, probe_s=5.0, probe_max_s=12.0, clock=clock)


async def test_failures_in_a_row_back_the_inverter_off(tracker: DefectiveTracker) -> None:
    for _ in range(2):
        tracker.failed("no reply", probing=tracker.admit())
    assert not tracker.defective and tracker.next_probe_in() is None
    tracker.failed("no reply", probing=tracker.admit())
    assert tracker.defective and tracker.next_probe_in() == 5.0
    with pytest.raises(InverterDefective, match=r"3 failed requests, last: no reply\); backed off, next probe in 5.0 s"):
        tracker.admit()


async def test_failed_probes_double_the_wait_up_to_the_cap(tracker: DefectiveTracker, clock: SimulatedClock) -> None:
    for _ in range(3):
        tracker.failed("no reply", probing=False)
    waits = []
    for _ in range(4):
        await clock.advance(tracker.next_probe_in() or 0)
        assert tracker.admit() is True  # a probe may go out
        tracker.failed("no reply", probing=True)
        waits.append(tracker.next_probe_in())
    assert waits == [10.0, 12.0, 12.0, 12.0]


async def test_an_answer_recovers_and_resets_the_wait(tracker: DefectiveTracker, clock: SimulatedClock) -> None:
    for _ in range(4):
        tracker.failed("no reply", probing=False)
    await clock.advance(5)
    tracker.admit()
    tracker.alive()
    assert (tracker.defective, tracker.failures, tracker.last_success) == (False, 0, clock.time())
    assert tracker.admit() is False
    for _ in range(3):
        tracker.failed("no reply", probing=False)
    assert tracker.next_probe_in() == 5.0  # the first wait again, not the doubled one
