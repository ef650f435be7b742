"""Is the wall clock trustworthy? A Raspberry Pi has no real-time clock: until NTP answers it
runs from 1970 (or from the last shutdown, with fake-hwclock). The planner plans nothing from a
clock that fails this check, and the ``clock_unsynchronised`` alert says so.

The check is a plausibility floor: a time before :data:`PLAUSIBLE_AFTER` cannot be now (no
release of nattery is older). It catches the 1970 boot; a clock restored from an older shutdown
but after the floor passes.
"""

from __future__ import annotations

from datetime import UTC, datetime

PLAUSIBLE_AFTER = datetime(2024, 1, 1, tzinfo=UTC).timestamp()


def clock_plausible(now: float) -> bool:
    """Whether ``now`` (epoch seconds) can be the real time."""
    return now >= PLAUSIBLE_AFTER
