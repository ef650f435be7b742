"""The line guard on simulated time: the gap, the late-reply guard and its extension."""

from __future__ import annotations

import asyncio

import pytest

from device.modbus.line_guard import MAX_RTU_ADU, LineGuard
from tests.simulated_clock import SimulatedClock

GAP_S, CHAR_S = 0.05, 0.001  # a frame of MAX_RTU_ADU bytes lasts 0.256 s
FRAME_S = MAX_RTU_ADU * CHAR_S


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def guard(clock: SimulatedClock) -> LineGuard:
    return LineGuard(GAP_S, CHAR_S, clock)


async def waited(guard: LineGuard, clock: SimulatedClock) -> float:
    start = clock.monotonic()
    await guard.wait_quiet()
    return clock.monotonic() - start


async def test_the_gap_follows_every_transaction(guard: LineGuard, clock: SimulatedClock) -> None:
    assert await waited(guard, clock) == 0  # nothing sent yet
    guard.begin()
    guard.end()
    assert await waited(guard, clock) == pytest.approx(GAP_S)
    assert await waited(guard, clock) == 0  # the gap is over


async def test_after_a_timeout_the_line_stays_free_for_a_maximal_frame_plus_the_gap(
    guard: LineGuard, clock: SimulatedClock
) -> None:
    guard.begin()
    guard.guard_late_reply()
    guard.end()
    assert await waited(guard, clock) == pytest.approx(FRAME_S + GAP_S)
    guard.begin()
    guard.end()
    assert await waited(guard, clock) == pytest.approx(GAP_S)  # guarded once, not forever


async def test_bytes_still_arriving_extend_the_guard_until_the_line_is_silent(
    guard: LineGuard, clock: SimulatedClock
) -> None:
    guard.begin()
    guard.guard_late_reply()
    guard.end()
    start = clock.monotonic()

    async def late_reply() -> None:  # bytes until 0.3 s after giving up, after the guard
        while clock.monotonic() - start < 0.3:
            await clock.sleep(0.01)
            guard.received()

    reply = asyncio.create_task(late_reply())
    elapsed = await waited(guard, clock)
    await reply
    assert elapsed == pytest.approx(0.3 + GAP_S, abs=0.011)  # silent for a gap after the last byte


async def test_a_babbling_line_cannot_stall_the_queue(guard: LineGuard, clock: SimulatedClock) -> None:
    guard.begin()
    guard.guard_late_reply()
    guard.end()

    async def babble() -> None:
        while True:
            await clock.sleep(0.005)
            guard.received()

    noise = asyncio.create_task(babble())
    elapsed = await waited(guard, clock)
    noise.cancel()
    limit = FRAME_S + GAP_S + 2 * FRAME_S  # the guard plus two more maximal frames
    assert limit <= elapsed <= limit + GAP_S  # the last silence check may end one gap after it


def test_bytes_during_a_request_mark_it_corrupt_rather_than_silent(guard: LineGuard) -> None:
    guard.received()
    guard.begin()
    assert not guard.rx_during_request  # what arrived before the request does not count
    guard.received()
    assert guard.rx_during_request and guard.outstanding
    guard.end()
    assert not guard.outstanding


async def test_a_hold_keeps_the_line_quiet_after_a_connect(guard: LineGuard, clock: SimulatedClock) -> None:
    """Huawei's SDongle wants a second of quiet after each connect (the map's connect pause)."""
    guard.hold(1.0)
    assert await waited(guard, clock) == pytest.approx(1.0)
    guard.begin()
    guard.end()
    guard.hold(0.01)  # a shorter hold does not cut the gap
    assert await waited(guard, clock) == pytest.approx(GAP_S)
