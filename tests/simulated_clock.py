"""A :class:`device.clock.Clock` on simulated time, for tests of loops that wait.

Nothing waits in real time: a sleeper is parked until the simulated time reaches its deadline.
Time moves either by itself (``auto=True``: once every runnable task has run, the clock jumps to
the earliest deadline and wakes that sleeper, so code that only sleeps runs at full speed) or
only when the test calls :meth:`SimulatedClock.advance` (for code that also waits for real I/O:
a jumping clock would race the broker or the serial line).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


async def settle(rounds: int = 20) -> None:
    """Let every task that can run without waiting for I/O or time run until it waits."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class SimulatedClock:
    speed = 1.0  # limits meant in real time (a command's age) count as they are

    def __init__(self, start: float = EPOCH, *, auto: bool = True) -> None:
        self._monotonic = 1000.0
        self._epoch_offset = start - self._monotonic
        self.auto = auto
        self.slept: list[float] = []  # every sleep asked for, in order
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def time(self) -> float:
        return self._monotonic + self._epoch_offset

    def monotonic(self) -> float:
        return self._monotonic

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        # Real time always moves on: a sleep too short to change the float still advances it.
        deadline = max(self._monotonic + seconds, math.nextafter(self._monotonic, math.inf))
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        if self.auto and (self._driver is None or self._driver.done()):
            self._driver = loop.create_task(self._drive(), name="simulated-clock")
        await future

    async def advance(self, seconds: float) -> None:
        """Move time ``seconds`` ahead, waking each sleeper due on the way in deadline order and
        letting it run before the next one (a loop that sleeps again inside the span wakes again)."""
        target = self._monotonic + seconds
        while (deadline := self._next_deadline()) is not None and deadline <= target:
            self._wake_next()
            await settle()
        self._monotonic = max(self._monotonic, target)
        await settle()

    async def _drive(self) -> None:
        while self._next_deadline() is not None:
            await settle()
            if self._next_deadline() is not None:
                self._wake_next()

    def _next_deadline(self) -> float | None:
        """The earliest deadline of a sleeper still waiting (cancelled ones are dropped: a
        timeout that did not fire must not move time)."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def _wake_next(self) -> None:
        deadline, _, future = heapq.heappop(self._sleepers)
        self._monotonic = max(self._monotonic, deadline)
        future.set_result(None)
