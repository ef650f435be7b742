import json
from pathlib import Path

import pytest

from common.passwords import hash_password, verify_password
from device.home.accounts import AuthError, Users

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
