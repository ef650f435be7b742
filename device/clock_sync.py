"""Is the wall clock trustworthy? A Raspberry Pi has no real-time clock: until NTP answers it
runs from 1970 (or from the last shutdown, with fake-hwclock). The planner plans nothing from a
clock that fails the check, and the ``clock_unsynchronised`` alert says so.

Two checks, chosen by ``device.clock_check``:

* ``floor``: a plausibility floor: a time before :data:`PLAUSIBLE_AFTER` cannot be now (no
  release of nattery is older). Catches the 1970 boot; works everywhere.
* ``ntp``: the floor and the kernel's own word (``adjtimex(2)``, read only): the clock is
  unsynchronised while the kernel reports ``TIME_ERROR``, which it does until an NTP daemon
  (balenaOS' chronyd) has disciplined it. Catches a clock restored from an old shutdown too.
  Where the kernel cannot be asked, the floor alone decides.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from datetime import UTC, datetime

PLAUSIBLE_AFTER = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
TIME_ERROR = 5  # adjtimex(2): "clock not synchronized"
TIMEX_BYTES = 512  # struct timex is 208 bytes on 64-bit Linux; modes = 0 (zeroed) only reads


def clock_plausible(now: float) -> bool:
    """Whether ``now`` (epoch seconds) can be the real time."""
    return now >= PLAUSIBLE_AFTER


def kernel_synchronised() -> bool | None:
    """The kernel's NTP state: False while unsynchronised, None where it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        state = int(libc.adjtimex(ctypes.create_string_buffer(TIMEX_BYTES)))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != TIME_ERROR


def clock_check(kind: str, kernel: Callable[[], bool | None] = kernel_synchronised) -> Callable[[float], bool]:
    """The check ``device.clock_check`` names: ``floor`` or ``ntp`` (see the module's doc)."""
    if kind == "floor":
        return clock_plausible
    if kind == "ntp":
        return lambda now: clock_plausible(now) and kernel() is not False
    raise ValueError(f"device.clock_check: got {kind!r}, allowed: floor, ntp")
