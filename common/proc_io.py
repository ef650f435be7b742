"""How many bytes this process has caused to be written to storage (SD card wear)."""

from __future__ import annotations

from pathlib import Path


def written_bytes(io_path: Path = Path("/proc/self/io")) -> int | None:
    """This process' ``write_bytes`` (what reached the block device), or None off Linux."""
    try:
        for line in io_path.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "write_bytes":
                return int(value)
    except (OSError, ValueError):
        pass
    return None
