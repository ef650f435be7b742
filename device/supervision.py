"""Long-running tasks that come back after a failure, and say so on ``health``.

:func:`supervise` restarts a job after a crash with a capped, doubling pause; a job that ran for a
good while before failing starts again from the shortest pause. :class:`TaskHealth` records each
task's state (running, restarting after a crash, done), its restarts and the last error, so the
``health`` payloads show a task that keeps failing instead of hiding it behind the restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from common.backoff import Backoff

log = structlog.get_logger(__name__)

Job = Callable[[], Awaitable[None]]


@dataclass
class TaskHealth:
    """State (``running``, ``restarting``, ``done``), restarts and the last error of each
    supervised task, by name."""

    state: dict[str, str] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def failed(self, name: str, exc: BaseException) -> None:
        self.state[name] = "restarting"
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.last_error[name] = repr(exc)[:300]

    def health(self) -> dict[str, Any]:
        return {name: {"state": state, "restarts": self.restarts.get(name, 0), "last_error": self.last_error.get(name)}
                for name, state in sorted(self.state.items())}


async def supervise(
    name: str, job: Job, *, backoff_max_s: float = 300.0, record: TaskHealth | None = None
) -> None:
    """Run ``job`` until it returns: restart it after a crash, waiting longer after each failure in a row."""
    backoff = Backoff(min(1.0, backoff_max_s), backoff_max_s)
    while True:
        started = asyncio.get_running_loop().time()
        if record is not None:
            record.state[name] = "running"
        try:
            await job()
            if record is not None:
                record.state[name] = "done"
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — keep the process up; the log and health say what broke
            if asyncio.get_running_loop().time() - started > 10 * backoff.upcoming:
                backoff.reset()  # it ran a good while: a fresh failure, not a crash loop
            delay = backoff.next()
            if record is not None:
                record.failed(name, exc)
            log.error("task crashed; restarting", task=name, error=repr(exc)[:500], retry_in_s=delay)
            await asyncio.sleep(delay)
