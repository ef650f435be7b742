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

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK: Clock = SystemClock()


async def within(clock: Clock, seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result if it completes within ``seconds`` on ``clock``, else TimeoutError.

    :func:`asyncio.wait_for` on ``clock``'s time: on a timeout the awaitable is cancelled and
    waited for (a ``Condition.wait`` holds its lock again when this returns).
    """
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
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
