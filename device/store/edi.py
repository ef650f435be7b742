"""Exported EDI interchanges (``edi_files``): the exact text of each file and its reference.

Each file's reference number is its row id, taken in the same write transaction that stores
it (AUTOINCREMENT: never reused, even after retention deleted older files), so references are
unique and increase on this device. The outbox trigger queues each new file for the ``edi``
sync stream in that same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from device.store.core import StoreCore


@dataclass(frozen=True)
class EdiFile:
    name: str
    content: str  # the interchange; ASCII (UNOC subset), so this text is its bytes
    period_start: int
    period_end: int


class EdiQueries(StoreCore):
    def add_edi_file(self, make: Callable[[int], EdiFile], now: float) -> EdiFile:
        """Store the file ``make(reference)`` builds for the next reference number; returns it."""

        def write() -> EdiFile:
            row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'edi_files'").fetchone()
            reference = (row[0] if row else 0) + 1
            made = make(reference)
            self.db.execute(
                "INSERT INTO edi_files (id, name, created_at, period_start, period_end, content) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [reference, made.name, now, made.period_start, made.period_end, made.content],
            )
            return made

        return self._write(write)

    def edi_files(self, name_prefix: str) -> list[dict[str, Any]]:
        """Stored files whose name begins with ``name_prefix``, oldest first."""
        pattern = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return list(self.db.query(
            "SELECT id, name, created_at, period_start, period_end, content FROM edi_files "
            "WHERE name LIKE ? ESCAPE '\\' ORDER BY id", [pattern],
        ))

    def recent_edi_files(self, limit: int) -> list[dict[str, Any]]:
        """The newest files, newest first, without their content; ``uploaded`` is 1 when the
        aggregator acknowledged the outbox row that carried the file (the ``edi`` sync cursor)."""
        return list(self.db.query(
            """SELECT f.id, f.name, f.created_at, f.period_start, f.period_end,
                      NOT EXISTS (SELECT 1 FROM outbox o WHERE o.stream = 'edi' AND o.key = f.name
                                  AND o.seq > coalesce((SELECT last_seq FROM sync_cursors WHERE stream = 'edi'), 0))
                      AS uploaded
               FROM edi_files f ORDER BY f.id DESC LIMIT ?""",
            [limit],
        ))
