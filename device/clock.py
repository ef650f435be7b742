"""The one clock the appliance's loops run on, injectable so their tests run on simulated time.

Loops that wait (the bridge's poll and watchdog, the Modbus worker's gaps and backoffs, the
controller) take a :class:`Clock` instead of calling :mod:`time` and :func:`asyncio.sleep`
themselves; production passes :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


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
