"""Exported EDI interchanges (``edi_files``): the exact text of each file and its reference.

Each file's reference number is its row id, taken in the same write transaction that stores
it (AUTOINCREMENT: never reused, even after retention deleted older files), so references are
unique and increase on this device. The outbox trigger queues each new file for the ``edi``
sync stream in that same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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
        aggregator acknowledged the outbox row that carried the file (the ``edi`` sync cursor);
        ``ack_state`` (None, "accepted", "rejected") and ``ack`` (its detail) are the gateway's answer."""
        rows = list(self.db.query(
            f"""SELECT f.id, f.name, f.created_at, f.period_start, f.period_end, {_UPLOADED} AS uploaded,
                       a.state AS ack_state, a.detail AS ack_detail, a.acked_at
                FROM edi_files f LEFT JOIN edi_acks a ON a.name = f.name ORDER BY f.id DESC LIMIT ?""",
            [limit],
        ))
        return [{**r, "ack": json.loads(r.pop("ack_detail")) if r["ack_detail"] else None} for r in rows]

    def unacknowledged_edi_files(self, limit: int) -> list[str]:
        """Names of uploaded files the gateway's answer has not been fetched for, oldest first."""
        return [r["name"] for r in self.db.query(
            f"""SELECT f.name FROM edi_files f WHERE {_UPLOADED}
                AND NOT EXISTS (SELECT 1 FROM edi_acks a WHERE a.name = f.name) ORDER BY f.id LIMIT ?""",
            [limit],
        )]

    def record_edi_answers(self, acks: Iterable[dict[str, Any]], days: Iterable[dict[str, Any]], now: float) -> None:
        """Store the gateway's answers (``name``, ``state`` and the rest as detail) and its
        reconciliation days (``day``, ``obis``, ``device_wh``, ``partner_wh``, ``diff_pct``, ``flagged``)."""
        acks, days = list(acks), list(days)

        def write() -> None:
            for ack in acks:
                detail = {k: v for k, v in ack.items() if k not in ("name", "state")}
                self.db.execute(
                    "INSERT INTO edi_acks (name, state, detail, acked_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
                    "DO UPDATE SET state = excluded.state, detail = excluded.detail, acked_at = excluded.acked_at",
                    [ack["name"], ack["state"], json.dumps(detail), now],
                )
            for day in days:
                self.db.execute(
                    "INSERT INTO edi_reconciliation (day, obis, device_wh, partner_wh, diff_pct, flagged, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, obis) DO UPDATE SET device_wh = excluded.device_wh, "
                    "partner_wh = excluded.partner_wh, diff_pct = excluded.diff_pct, flagged = excluded.flagged, "
                    "updated_at = excluded.updated_at",
                    [day["day"], day["obis"], int(day["device_wh"]), int(day["partner_wh"]), day["diff_pct"],
                     int(bool(day["flagged"])), now],
                )

        self._write(write)

    def latest_reconciliation(self, obis: str) -> dict[str, Any] | None:
        """The newest reconciled day of ``obis`` (None: the official values never arrived)."""
        rows = list(self.db.query(
            "SELECT day, obis, device_wh, partner_wh, diff_pct, flagged FROM edi_reconciliation WHERE obis = ? "
            "ORDER BY day DESC LIMIT 1", [obis],
        ))
        return rows[0] if rows else None


#: SQL: the outbox row that carried file ``f`` has been acknowledged by the aggregator.
_UPLOADED = """NOT EXISTS (SELECT 1 FROM outbox o WHERE o.stream = 'edi' AND o.key = f.name
               AND o.seq > coalesce((SELECT last_seq FROM sync_cursors WHERE stream = 'edi'), 0))"""

