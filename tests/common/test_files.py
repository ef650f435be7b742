from __future__ import annotations

import stat
from pathlib import Path

import pytest

from common.files import write_atomic


def test_replaces_the_file_with_the_mode_asked_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "users.json"
    write_atomic(target, "first")
    write_atomic(target, "second ✓")
    assert target.read_text(encoding="utf-8") == "second ✓"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    write_atomic(target, "third", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["users.json"]


def test_a_failed_check_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "nattery.yaml"
    target.write_text("old", encoding="utf-8")
    seen: list[str] = []

    def refuse(tmp: Path) -> None:
        seen.append(tmp.read_text(encoding="utf-8"))
        raise ValueError("invalid")

    with pytest.raises(ValueError, match="invalid"):
        write_atomic(target, "new", check=refuse)
    assert seen == ["new"]
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nattery.yaml"]


def test_a_write_that_fails_midway_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "bad \udcff surrogate")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
