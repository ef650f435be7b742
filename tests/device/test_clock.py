"""``within`` (wait_for on an injected clock) and the simulated clock the loop tests run on."""

from __future__ import annotations

import asyncio

import pytest

from device.clock import within
from tests.simulated_clock import SimulatedClock, settle


async def test_within_returns_the_result_before_the_clock_runs_out() -> None:
    clock = SimulatedClock()
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await within(clock, 30, event.wait()) is True
    assert clock.monotonic() == 1000.0  # no time passed


async def test_within_times_out_on_the_clock_not_on_real_time() -> None:
    clock = SimulatedClock()
    start = clock.monotonic()
    with pytest.raises(TimeoutError, match="not done within 3600 s"):
        await within(clock, 3600, asyncio.Event().wait())  # an hour, at once
    assert clock.monotonic() - start == 3600


async def test_a_condition_wait_that_times_out_holds_its_lock_again() -> None:
    clock = SimulatedClock()
    condition = asyncio.Condition()
    async with condition:
        with pytest.raises(TimeoutError):
            await within(clock, 5, condition.wait())
        assert condition.locked()  # the cancelled wait re-acquired it before within returned


async def test_a_cancelled_timeout_does_not_move_time() -> None:
    clock = SimulatedClock()
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    await within(clock, 5, event.wait())  # its 5 s timer is cancelled
    await settle(50)  # the clock's driver has looked at its sleepers again
    assert clock.monotonic() == 1000.0
