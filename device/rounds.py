"""Background work done in rounds: a step, a pause, again, until cancelled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def repeat(
    step: Callable[[float], Awaitable[Any]],
    every_s: float,
    failure_event: str,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run ``step(now)`` every ``every_s``; a failing round is logged as ``failure_event`` and the
    next round runs as usual (a bad day must not stop tomorrow's work)."""
    while True:
        try:
            await step(clock())
        except Exception as exc:  # noqa: BLE001 — logged; the next round tries again
            log.error(failure_event, error=repr(exc))
        await sleep(every_s)
