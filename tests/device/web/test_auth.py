import json
from pathlib import Path

import pytest

from device.web.auth import AuthError, LoginLimiter, Sessions, Users, hash_password, verify_password

INITIAL = {"homeowner": "nattery", "installer": "installer"}


def test_hashes_are_salted_scrypt_and_verify() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", first) and not verify_password("wrong", first)
    assert not verify_password("correct horse", "md5$abc")


async def test_seeding_marks_default_passwords_for_a_change(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json", {"homeowner": "nattery", "installer": "from-the-env-1"})
    await users.load()
    assert users.accounts["homeowner"].must_change is True
    assert users.accounts["installer"].must_change is False  # the operator chose it
    stored = json.loads((tmp_path / "users.json").read_text())
    assert "nattery" not in json.dumps(stored)
    again = Users(tmp_path / "users.json", INITIAL)
    await again.load()
    assert await again.check("installer", "from-the-env-1") is not None  # not re-seeded


@pytest.mark.parametrize("old, new, repeat, message", [
    ("nattery", "abc", "abc", "at least 8"),
    ("nattery", "long-enough-1", "long-enough-2", "differ"),
    ("nattery", "installer", "installer", "not a default"),
    ("wrong-old-1", "long-enough-1", "long-enough-1", "old_password: wrong"),
])
async def test_password_change_refuses_weak_or_unproven(tmp_path: Path, old: str, new: str, repeat: str, message: str) -> None:
    users = Users(tmp_path / "users.json", INITIAL)
    await users.load()
    with pytest.raises(AuthError, match=message):
        await users.change_password("homeowner", old, new, repeat)


async def test_password_change_persists(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json", INITIAL)
    await users.load()
    await users.change_password("homeowner", "nattery", "long-enough-1", "long-enough-1")
    reloaded = Users(tmp_path / "users.json", INITIAL)
    await reloaded.load()
    assert await reloaded.check("homeowner", "long-enough-1") is not None
    assert reloaded.accounts["homeowner"].must_change is False


def test_limiter_locks_after_max_failures_within_the_window() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60)
    keys = ["addr:1.2.3.4", "account:installer"]
    for t in (0, 1, 2):
        assert limiter.retry_after(keys, now=t) == 0
        limiter.failed(keys, now=t)
    assert limiter.retry_after(keys, now=3) == pytest.approx(57)
    assert limiter.retry_after(["addr:5.6.7.8", "account:installer"], now=3) > 0  # the account is locked too
    assert limiter.retry_after(keys, now=61) == 0  # the window moved on


def test_sessions_expire_and_are_swept() -> None:
    sessions = Sessions(lifetime_s=100)
    session = sessions.new("homeowner")
    assert sessions.get(session.id) is session
    assert sessions.get(session.id, now=session.expires + 1) is None
    assert sessions.sweep(now=session.expires + 1) == 1
    assert sessions.get("forged") is None and sessions.get(None) is None
