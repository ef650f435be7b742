"""written_bytes reads /proc/self/io's write_bytes, and says None where there is none."""

from __future__ import annotations

from pathlib import Path

from common.proc_io import written_bytes


def test_reads_write_bytes(tmp_path: Path) -> None:
    io = tmp_path / "io"
    io.write_text("rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 81920\ncancelled_write_bytes: 0\n")
    assert written_bytes(io) == 81920


def test_none_without_the_file_or_the_field(tmp_path: Path) -> None:
    assert written_bytes(tmp_path / "missing") is None
    (tmp_path / "io").write_text("rchar: 10\n")
    assert written_bytes(tmp_path / "io") is None


def test_this_process_has_a_figure_on_linux() -> None:
    if Path("/proc/self/io").exists():
        assert isinstance(written_bytes(), int)
