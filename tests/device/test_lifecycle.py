"""Process composition: the safe shutdown runs however a service ends."""

from __future__ import annotations

import asyncio

import pytest

from device.services.lifecycle import run_until


async def test_a_crash_still_runs_the_safe_shutdown_and_is_reported() -> None:
    stopped: list[str] = []

    async def crashing() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("health payload not JSON")

    async def safe_shutdown() -> None:
        stopped.append("inverter in self_consumption, readings flushed")

    with pytest.raises(RuntimeError, match="health payload"):
        await asyncio.wait_for(run_until(asyncio.Event(), crashing(), safe_shutdown), 10)
    assert stopped == ["inverter in self_consumption, readings flushed"]


async def test_stop_runs_the_shutdown_while_main_still_runs() -> None:
    stop, seen = asyncio.Event(), []
    running = asyncio.Event()

    async def main() -> None:
        running.set()
        await asyncio.Event().wait()

    async def on_stop() -> None:
        seen.append(running.is_set())

    stop.set()
    await asyncio.wait_for(run_until(stop, main(), on_stop), 10)
    assert seen == [True]
