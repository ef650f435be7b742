"""What one aggregator instance lets requests cost: waits, concurrent batch decodes, failed
credentials. The limits are per instance (several instances behind one load balancer each keep
their own counts)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """``order_wait_s``: how long a batch waits for the one before it (see StreamProgress);
    ``decodes``: batches read and decoded at once (each may hold up to the decompressed cap);
    ``decode_wait_s``: how long an upload waits for a decode slot before 503 + Retry-After;
    ``body_timeout_s``: how long the body of an upload may take to arrive (then 408);
    ``auth_failures`` per ``auth_window_s``: failed credentials per source address and per
    device or operator name before 429 + Retry-After."""

    order_wait_s: float = 10.0
    decodes: int = 2
    decode_wait_s: float = 10.0
    body_timeout_s: float = 60.0
    auth_failures: int = 10
    auth_window_s: float = 60.0


class FailureLimiter:
    """Failures per key within a sliding window. An attempt is charged *before* the costly
    check and refunded when it succeeds, so parallel attempts cannot all slip in under the
    limit. Keys are bounded in number (the oldest are forgotten first)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, keys: Sequence[str]) -> float | None:
        """Seconds until every key is below the limit again; None when none is at it."""
        now = self._clock()
        waits = []
        for key in keys:
            stamps = self._recent(key, now)
            if len(stamps) >= self.limit:
                waits.append(stamps[len(stamps) - self.limit] + self.window_s - now)
        return max(waits) if waits else None

    def charge(self, keys: Sequence[str]) -> float:
        """Count a failure for each key now; returns the stamp to :meth:`refund` on success."""
        now = self._clock()
        for key in keys:
            self._recent(key, now).append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
        return now

    def refund(self, keys: Sequence[str], stamp: float) -> None:
        for key in keys:
            stamps = self._failures.get(key)
            if stamps is not None and stamp in stamps:
                stamps.remove(stamp)

    def _recent(self, key: str, now: float) -> deque[float]:
        stamps = self._failures.setdefault(key, deque())
        while stamps and stamps[0] <= now - self.window_s:
            stamps.popleft()
        return stamps
