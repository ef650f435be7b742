"""Live updates: one telemetry listener fans out to every open page over server-sent events.

SSE rather than WebSocket: updates only flow one way, ``EventSource`` reconnects by itself, and
it passes the session cookie like any request. Each client gets a small queue; a slow phone
drops old snapshots instead of growing memory (only the newest matters).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from device.store import Reading
from device.web.deps import TelemetrySource

HEARTBEAT_S = 15.0
ROLES = ("soc_pct", "pv_w", "load_w", "battery_w", "grid_w", "state", "mode")


def snapshot(reading: Reading | None, online: bool | None, with_registers: bool, now: float) -> dict[str, Any]:
    """What pages need of one reading; ``now`` (the appliance's time) lets the browser compute the
    data age on its own clock."""
    data: dict[str, Any] = {"now": now, "online": online, "ts": None, **dict.fromkeys(ROLES)}
    if reading is not None:
        data["ts"] = reading.ts
        data.update({role: reading.roles.get(role) for role in ROLES})
        if with_registers:
            data["registers"] = dict(reading.registers)
    return data


class LiveHub:
    """Subscribes once to the telemetry source; each client ``subscribe()``s to an async iterator."""

    def __init__(self, source: TelemetrySource) -> None:
        self.source = source
        self._queues: set[asyncio.Queue[Reading | None]] = set()
        self._unlisten: Callable[[], None] | None = None
        self._closing = False

    def start(self) -> None:
        self._unlisten = self.source.listen(self._publish)

    def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    @property
    def clients(self) -> int:
        return len(self._queues)

    def _publish(self, reading: Reading | None) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(reading)

    def close(self) -> None:
        """End every stream now (server shutdown): open pages must not hold the shutdown up."""
        self._closing = True
        self._publish(None)

    async def subscribe(self) -> AsyncIterator[Reading | None]:
        """Yields new readings, and ``None`` every :data:`HEARTBEAT_S` without one (keep-alive);
        ends when the hub closes."""
        queue: asyncio.Queue[Reading | None] = asyncio.Queue(maxsize=4)
        self._queues.add(queue)
        try:
            while not self._closing:
                try:
                    reading = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield None
                    continue
                if reading is None:
                    return
                yield reading
        finally:
            self._queues.discard(queue)


def sse_event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def close_quietly(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
