"""The app's job supervision."""

from __future__ import annotations

import asyncio
from typing import Any

from device.supervision import supervise


async def test_supervise_restarts_a_crashing_job() -> None:
    runs: list[int] = []

    async def flaky() -> Any:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")

    await asyncio.wait_for(supervise("flaky", flaky, backoff_max_s=0.01), 10)
    assert len(runs) == 3
