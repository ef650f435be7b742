"""Replacing a small file so that a reader, or the next start after a power cut, finds either the
old content or the new one, never a mix or an empty file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, text: str, *, mode: int = 0o600, check: Callable[[Path], None] | None = None) -> None:
    """Write ``text`` (UTF-8) to a new file beside ``path`` and rename it over ``path``.

    ``mode`` is the new file's permission (default owner-only: several of these files hold
    password hashes or credentials). The data and the rename are flushed to disk before this
    returns. ``check``, if given, is called with the written temporary file before it replaces
    ``path``; if it raises, the temporary file is removed, ``path`` is left as it was and the
    exception propagates.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
