"""Start and stop of a long-lived service: signals, and shutdown while the service still runs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM (Balena stopping the container) or SIGINT (Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_until(stop: asyncio.Event, main: Awaitable[None], on_stop: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until ``stop`` is set or it fails; then ``on_stop`` while ``main`` still runs.

    ``on_stop`` (the safe shutdown: inverter to self-consumption, readings to disk) runs after a
    crash of ``main`` too; the crash is raised after it, not swallowed."""
    task = asyncio.ensure_future(main)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await on_stop()
        if task.done():
            task.result()
    finally:
        stopper.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
