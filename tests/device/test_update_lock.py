"""Balena's update lock as a second process (the supervisor) sees it: an exclusive ``flock``."""

from __future__ import annotations

import fcntl
from pathlib import Path

from device.update_lock import UpdateLock


def taken_by_someone_else(path: Path) -> bool:
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_acquire_locks_the_file_and_release_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "balena" / "updates.lock"
    lock = UpdateLock(path)
    assert lock.acquire() and lock.acquire()  # idempotent
    assert lock.held and taken_by_someone_else(path)
    lock.release()
    lock.release()
    assert not lock.held and not path.exists()


def test_a_lock_the_supervisor_holds_is_not_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "updates.lock"
    with path.open("a") as supervisor:
        fcntl.flock(supervisor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock = UpdateLock(path)
        assert lock.acquire() is False and not lock.held
    assert lock.acquire() is True
    lock.release()
