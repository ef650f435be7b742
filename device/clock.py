"""The one clock the appliance's loops run on, injectable so their tests run on simulated time.

Loops that wait (the bridge's poll and watchdog, the Modbus worker's gaps and backoffs, the
controller) take a :class:`Clock` instead of calling :mod:`time` and :func:`asyncio.sleep`
themselves; production passes :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    #: Clock seconds per real second: 1, or a demo's speed. Limits meant in real time (how late a
    #: command may arrive over the broker) are multiplied by it.
    speed: float

    def time(self) -> float:
        """Epoch seconds: timestamps and wall-clock slot boundaries."""
        ...

    def monotonic(self) -> float:
        """Seconds that never jump: intervals, deadlines, timeouts."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (at once when ``seconds <= 0``)."""
        ...


class SystemClock:
    """The real clock: :func:`time.time`, :func:`time.monotonic`, :func:`asyncio.sleep`."""

    speed = 1.0

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()


class ScaledClock:
    """Demo time: ``speed`` simulated seconds pass per real second, from ``start`` (epoch seconds,
    default now). ``nattery run --simulate --speed 60`` runs the whole appliance on one, so that
    a simulated day, with its quarter-hours, plans and settlements, passes in 24 minutes."""

    def __init__(self, speed: float, start: float | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"speed: got {speed}, allowed: a number above 0")
        self.speed = speed
        self.start = time.time() if start is None else start
        self._real0 = time.monotonic()

    def time(self) -> float:
        return self.start + (time.monotonic() - self._real0) * self.speed

    def monotonic(self) -> float:
        return (time.monotonic() - self._real0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)



async def within(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result if it completes within ``seconds`` on ``clock``, else TimeoutError.

    :func:`asyncio.wait_for` on ``clock``'s time, counted from the call: on a timeout the
    awaitable is cancelled and waited for (a ``Condition.wait`` holds its lock again when this
    returns).
    """
    start = clock.monotonic()

    async def timer_from_start() -> None:  # the timer task starts later: the time meanwhile counts
        await clock.sleep(seconds - (clock.monotonic() - start))

    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(timer_from_start())
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise TimeoutError(f"not done within {seconds:g} s")
    return task.result()
