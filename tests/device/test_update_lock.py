"""Balena's update lock as the supervisor (the file exists) and the host OS (an exclusive ``flock``)
see it, from a second process's point of view."""

from __future__ import annotations

import fcntl
from pathlib import Path

from device.update_lock import MARKER, UpdateLock


def flocked_by_someone_else(path: Path) -> bool:
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_acquire_creates_and_flocks_the_file_and_release_removes_it(tmp_path: Path) -> None:
    path = tmp_path / "balena" / "updates.lock"
    lock = UpdateLock(path)
    assert lock.acquire() and lock.acquire()  # idempotent
    assert lock.held and path.exists() and flocked_by_someone_else(path)
    lock.release()
    lock.release()
    assert not lock.held and not path.exists()


def test_a_lock_the_supervisor_took_is_not_waited_for_nor_removed(tmp_path: Path) -> None:
    path = tmp_path / "updates.lock"
    path.touch()  # the supervisor's lockfile: created exclusively, empty
    lock = UpdateLock(path)
    assert lock.acquire() is False and not lock.held
    lock.clear_stale()
    assert path.exists()
    path.unlink()  # the supervisor is done
    assert lock.acquire() is True
    lock.release()


def test_a_lock_an_earlier_bridge_left_is_cleared_at_start(tmp_path: Path) -> None:
    path = tmp_path / "updates.lock"
    path.write_bytes(MARKER)  # a bridge killed while forced
    lock = UpdateLock(path)
    lock.clear_stale()
    assert not path.exists() and lock.acquire()
    lock.clear_stale()  # never its own live lock
    assert path.exists()
    lock.release()
