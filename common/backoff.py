"""Capped exponential backoff: how long to wait before retrying something that keeps failing.

Used wherever a failure is retried: the serial link and inverter probes, the MQTT session,
supervised app tasks, ENTSO-E requests, the price schedule, setpoints and the cloud upload.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Waits of ``initial``, ``initial × factor``, ``initial × factor²`` … never above ``cap``.

    Either ask for the wait after the n-th failure in a row (:meth:`delay`), or let the object
    count: :meth:`next` after each failure, :meth:`reset` after a success; :attr:`upcoming` is
    the wait the next failure will get (without jitter), for logs and deadlines.

    ``jitter`` (0…1) spreads retries of many clients failing together: each wait is drawn
    uniformly from ``[max(initial, d × (1 − jitter)), d]`` where ``d`` is the capped wait, so
    ``1`` is "full jitter" that still never retries sooner than ``initial``, and ``0`` (the
    default) is the exact sequence. ``rng`` returns a float in [0, 1) (tests pass a constant).
    """

    def __init__(
        self,
        initial: float,
        cap: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not initial > 0:
            raise ValueError(f"backoff initial: {initial!r} s; allowed: more than 0")
        if not cap >= initial:
            raise ValueError(f"backoff cap: {cap!r} s; allowed: at least initial ({initial!r} s)")
        if not factor >= 1:
            raise ValueError(f"backoff factor: {factor!r}; allowed: 1 or more")
        if not 0 <= jitter <= 1:
            raise ValueError(f"backoff jitter: {jitter!r}; allowed: 0 to 1")
        self.initial, self.cap, self.factor, self.jitter = initial, cap, factor, jitter
        self._rng = rng
        self.failures = 0

    def ceiling(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1 = the first), before jitter."""
        try:
            return min(self.cap, self.initial * self.factor ** max(failures - 1, 0))
        except OverflowError:  # factor ** a very long run of failures
            return self.cap

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row, jitter applied."""
        high = self.ceiling(failures)
        if not self.jitter:
            return high
        low = max(self.initial, high * (1 - self.jitter))
        return low + self._rng() * (high - low)

    def next(self) -> float:
        """Count one more failure in a row and return the wait before the next attempt."""
        self.failures += 1
        return self.delay(self.failures)

    def reset(self) -> None:
        """A success: the next failure waits ``initial`` again."""
        self.failures = 0

    @property
    def upcoming(self) -> float:
        """The wait :meth:`next` would return now, without jitter."""
        return self.ceiling(self.failures + 1)
