"""Balena's update lock: while the bridge holds it, the supervisor does not stop the services.

Balena has two locks on the same file, ``/tmp/balena/updates.lock`` (the supervisor mounts
``/tmp/balena`` into every service): the supervisor does not kill or restart services for an
update while the file *exists* (it must be created exclusively, ``O_CREAT | O_EXCL``, the
``lockfile`` convention; the supervisor creates it the same way before it kills a service), and
the host OS does not reboot for an OS update while a process holds an exclusive ``flock`` on it.
The bridge takes both while a control sequence (several register writes) is under way and while
the inverter is in a forced mode, so an update never leaves the inverter half-written or forced
with no bridge to bring it back. Outside Balena the directory is simply created.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

BALENA_LOCK_FILE = Path("/tmp/balena/updates.lock")
MARKER = b"nattery-bridge\n"  # what the bridge writes into its lock file, to know a stale one as its own


class UpdateLock:
    """The lock file, taken and released idempotently, never waited for.

    If the file exists already (the supervisor is about to update), :meth:`acquire` logs and
    returns ``False``: the bridge is about to be stopped, and its shutdown puts the inverter
    back into self-consumption anyway, so refusing the command would gain nothing.
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
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            log.warning("update lock taken by someone else (an update in progress?)", path=str(self.path))
            return False
        os.write(fd, MARKER)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file this process just created: nobody else has it
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        self.path.unlink(missing_ok=True)  # first: the supervisor goes by the file's existence
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def clear_stale(self) -> None:
        """At start-up: remove a lock file an earlier bridge left behind (killed while forced).

        Only a file with the bridge's marker is removed; the supervisor's own (empty) lock stays.
        """
        try:
            stale = self._fd is None and self.path.read_bytes() == MARKER
        except FileNotFoundError:
            return
        if stale:
            self.path.unlink(missing_ok=True)
            log.warning("removed the update lock an earlier bridge left behind", path=str(self.path))
