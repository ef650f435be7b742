"""A sliding-window request limiter shared by every ENTSO-E call of a process.

ENTSO-E allows 400 requests per minute per token and answers 429 beyond that (and may ban the
token for a while). entsoe-py splits long queries into many requests on its own, so the limit is
applied per HTTP request, from the worker thread that makes it (:meth:`acquire_blocking`).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, max_calls: int, period_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls: got {max_calls}, allowed: >= 1")
        self.max_calls = max_calls
        self.period_s = period_s
        self._clock = clock
        self._calls: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self.waited_s = 0.0  # total time spent waiting for the limit (for health)

    def _delay(self) -> float:
        now = self._clock()
        while self._calls and now - self._calls[0] >= self.period_s:
            self._calls.popleft()
        if len(self._calls) < self.max_calls:
            self._calls.append(now)
            return 0.0
        return self._calls[0] + self.period_s - now

    async def acquire(self) -> None:
        """Wait until one more request fits into the window, then count it."""
        async with self._lock:
            while (delay := self._delay()) > 0:
                self.waited_s += delay
                await asyncio.sleep(delay)

    def acquire_blocking(self, loop: asyncio.AbstractEventLoop) -> None:
        """:meth:`acquire` from a worker thread (the event loop ``loop`` keeps the state)."""
        asyncio.run_coroutine_threadsafe(self.acquire(), loop).result()
