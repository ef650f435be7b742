"""Crash points for the kill -9 tests: ``<VARIABLE>=<point>:<n>`` SIGKILLs the process the
n-th time execution reaches ``point``. Unset (always, in production) it does nothing."""

from __future__ import annotations

import os
import signal

_counts: dict[tuple[str, str], int] = {}


def crash_point(variable: str, name: str) -> None:
    point, _, count = os.environ.get(variable, "").partition(":")
    if point != name:
        return
    key = (variable, name)
    _counts[key] = _counts.get(key, 0) + 1
    if _counts[key] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
