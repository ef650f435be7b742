"""Balena's update lock: while the bridge holds it, the supervisor does not stop the services.

The supervisor bind-mounts ``/tmp/balena`` into every service and, before an update or restart,
takes ``updates.lock`` there itself; a service that holds it (an exclusive ``flock`` on the file,
the convention Balena's lockfile documentation describes) makes the supervisor wait. The bridge
holds it while a control sequence (several register writes) is under way and while the inverter
is in a forced mode, so an update never leaves the inverter half-written or forced with no bridge
to bring it back. Outside Balena the directory is simply created; nothing else looks at it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

BALENA_LOCK_FILE = Path("/tmp/balena/updates.lock")


class UpdateLock:
    """An exclusive ``flock`` on the lock file, taken and released idempotently, never blocking.

    If another holder (the supervisor, mid-update) has it, :meth:`acquire` logs and returns
    ``False``: the bridge is about to be stopped, and its shutdown puts the inverter back into
    self-consumption anyway, so refusing the command would gain nothing.
    """

    def __init__(self, path: Path = BALENA_LOCK_FILE) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            log.warning("update lock held by someone else (an update in progress?)", path=str(self.path))
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Removed while still locked: supervisors that check only whether the file exists
        # (lockfile semantics) see it gone too.
        self.path.unlink(missing_ok=True)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
