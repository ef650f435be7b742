"""``within`` (wait_for on an injected clock) and the simulated clock the loop tests run on."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import click
import pytest

from device.cli import demo_start
from device.clock import ScaledClock, within
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


async def test_within_counts_its_time_from_the_call() -> None:
    """The timer is a task that starts after the call: time that passes before it starts counts
    (it once did not, and the bridge's rewrite loop, waiting within its due time, woke a whole
    test step late on simulated time)."""
    clock = SimulatedClock(auto=False)
    waiting = asyncio.create_task(within(clock, 10, asyncio.Event().wait()))
    moved = asyncio.create_task(clock.advance(4))  # runs after within's call, before its timer starts
    await moved
    await clock.advance(6)
    assert waiting.done()
    with pytest.raises(TimeoutError, match="not done within 10 s"):
        waiting.result()


async def test_a_cancelled_timeout_does_not_move_time() -> None:
    clock = SimulatedClock()
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    await within(clock, 5, event.wait())  # its 5 s timer is cancelled
    await settle(50)  # the clock's driver has looked at its sleepers again
    assert clock.monotonic() == 1000.0


def test_a_demo_clock_runs_speed_times_faster_from_its_start(monkeypatch: pytest.MonkeyPatch) -> None:
    real = [5000.0]
    monkeypatch.setattr(time, "monotonic", lambda: real[0])
    clock = ScaledClock(60, start=1_717_236_000.0)
    assert clock.time() == 1_717_236_000.0 and clock.monotonic() == 0.0
    real[0] += 15  # a quarter-hour of demo time in 15 real seconds
    assert clock.time() == 1_717_236_900.0 and clock.monotonic() == 900.0
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    asyncio.run(clock.sleep(300))  # the store's housekeeping interval: 5 real seconds
    assert slept == [5.0]
    with pytest.raises(ValueError, match="speed: got 0, allowed: a number above 0"):
        ScaledClock(0)


@pytest.mark.parametrize(("text", "local"), [
    ("10:00", None), ("7:30", None), ("2024-03-31 02:30", "2024-03-31T03:30:00+02:00"),  # no 02:30 that night
    ("2024-10-27T02:30", "2024-10-27T02:30:00+02:00"),  # the first of the two
])
def test_demo_start_takes_a_local_time(text: str, local: str | None) -> None:
    tz = ZoneInfo("Europe/Berlin")
    start = datetime.fromtimestamp(demo_start(text, "Europe/Berlin"), tz)
    if local is None:
        assert start.date() == datetime.now(tz).date() and start.strftime("%H:%M") == text.zfill(5)
    else:
        assert start.timestamp() == datetime.fromisoformat(local).timestamp()


@pytest.mark.parametrize("text", ["25:00", "soon", "2024-13-01 10:00", ""])
def test_demo_start_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(click.BadParameter, match=r"allowed: HH:MM or YYYY-MM-DD HH:MM \(local time\)"):
        demo_start(text, "Europe/Berlin")
