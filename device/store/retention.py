"""The retention policy, and making room when the disk is full anyway."""

from __future__ import annotations

import sqlite3
from typing import Any

import structlog

from device.store.events import EventQueries
from device.store.outbox import OutboxQueries
from device.store.readings import ReadingQueries
from device.store.records import Retention
from device.store.reserve import is_disk_full

log = structlog.get_logger(__name__)


class RetentionQueries(ReadingQueries, EventQueries, OutboxQueries):
    def prune(self, now: float, retention: Retention | None = None) -> dict[str, int]:
        """Delete what the retention policy no longer keeps; returns rows deleted per table.

        Readings older than their retention go even when not yet synced (the policy is the
        installer's promise about disk use); that loss is recorded as a warning event.
        Outbox rows go once acknowledged. Deletes run in chunks so the bridge's writes
        are never blocked for long.
        """
        keep = retention or self.retention
        day = 86_400.0
        # Only a device that syncs (it has a cursor) can lose readings "before the cloud had them".
        unsynced = self.db.execute(
            "SELECT count(*) FROM readings, sync_cursors c WHERE c.stream = 'readings' AND ts < ? AND id > c.last_seq",
            [now - keep.readings_days * day],
        ).fetchone()[0]
        plan = [
            ("readings", "ts < ?", [now - keep.readings_days * day]),
            ("energy_slots", "ts < ?", [now - keep.aggregates_days * day]),
            ("settlements", "ts < ?", [now - keep.aggregates_days * day]),
            ("prices", "ts < ?", [now - keep.aggregates_days * day]),
            ("market_series", "ts < ?", [now - keep.aggregates_days * day]),
            ("settlement_days", "computed_at < ?", [now - keep.aggregates_days * day]),
            ("edi_files", "created_at < ?", [now - keep.aggregates_days * day]),
            ("edi_acks", "acked_at < ?", [now - keep.aggregates_days * day]),
            ("edi_reconciliation", "updated_at < ?", [now - keep.aggregates_days * day]),
            ("forecasts", "made_at < ?", [now - keep.forecasts_days * day]),
            ("plans", "created_at < ?", [now - keep.plans_days * day]),
            ("schedules", "created_at < ?", [now - keep.plans_days * day]),  # the committed plans go with them
            ("events", "ts < ?", [now - keep.events_days * day]),
            ("outbox", "seq <= coalesce((SELECT last_seq FROM sync_cursors c WHERE c.stream = outbox.stream), 0)"
             " OR created_at < ?", [now - keep.aggregates_days * day]),
        ]
        deleted = {table: self._delete_chunked(table, where, args) for table, where, args in plan}
        if not self._full_disk_depth:
            self.reserve.ensure()
        if unsynced:
            self.add_event(
                "warning", "sync_data_pruned",
                f"{unsynced} readings older than {keep.readings_days} days were deleted before the cloud had them",
                {"readings": unsynced},
            )
        return deleted

    def _delete_chunked(self, table: str, where: str, args: list[Any], chunk: int = 20_000) -> int:
        key = "seq" if table == "outbox" else "rowid"
        total = 0
        while True:
            n = self._write(
                lambda: self.db.execute(
                    f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)",
                    [*args, chunk],
                ).rowcount
            )
            total += n
            if n < chunk:
                return total

    def relieve_full_disk(self, now: float, fraction: float) -> int:
        """Make room after SQLITE_FULL / ENOSPC; returns how many readings were deleted.

        The reserve file is released first: it gives the checkpoint room to move the WAL into
        the database, after which the WAL file is truncated (on a full card it is often the
        largest thing that can go at once). Then the retention policy runs, then the oldest
        ``fraction`` of the readings go (already synced ones first), in small transactions
        with checkpoints in between. The reserve is taken again once there is room
        (:meth:`prune`).
        """
        before = self.count_readings()
        self.reserve.release()
        self._checkpoint("TRUNCATE")
        self._full_disk_depth += 1
        try:
            for step in (lambda: self.prune(now), lambda: self._delete_oldest_readings(fraction)):
                try:
                    step()
                except (sqlite3.Error, OSError) as exc:
                    if not is_disk_full(exc):
                        raise
                    log.warning("disk_full_pruning_incomplete", error=str(exc))
        finally:
            self._full_disk_depth -= 1
        self._checkpoint("TRUNCATE")
        return before - self.count_readings()

    def _delete_oldest_readings(self, fraction: float, chunk: int = 2000) -> None:
        left = int(self.count_readings() * fraction)
        cursor = self.sync_cursor("readings")
        synced = self.db.execute("SELECT count(*) FROM readings WHERE id <= ?", [cursor]).fetchone()[0]
        # Synced readings are safe in the cloud; unsynced ones go only when nothing else helps.
        where, args = ("WHERE id <= ?", [cursor]) if synced >= left else ("", [])
        while left > 0:
            n = min(chunk, left)
            self._write(lambda: self.db.execute(
                f"DELETE FROM readings WHERE id IN (SELECT id FROM readings {where} ORDER BY id LIMIT ?)", [*args, n]  # noqa: B023 — runs now
            ))
            self._checkpoint("PASSIVE")
            left -= n

