"""Idempotent ingest: a batch is stored exactly once, whatever the device retries.

Per (device, stream, store) the aggregator keeps the highest stored sequence number (a device's
store numbers its items; a replaced SD card is a new store with a stream of its own). In one
transaction, holding that stream row's lock (so concurrent instances cannot interleave):

- a batch with the same range and digest as a stored one is an exact retry: acknowledged,
  nothing written;
- a batch starting at or below the stored high-water mark otherwise overlaps stored data
  (as does one that says it follows another sequence number than the one stored): refused
  with 409 and the high-water mark, so the device can resume after it;
- a batch that follows one not stored yet (``prev_seq`` above the mark) gets 425;
- anything else is appended: items, the batch record, the stream state and ``last_seen``.

``TEST_CLOUD_CRASH=<point>:<n>`` kills the process with SIGKILL at the n-th batch
reaching ``decoded`` (see :mod:`cloud_sync.app`), ``items_written`` (items inserted, batch
record and stream position not yet), ``before_commit`` or ``after_commit``; the crash tests
use it to stop the service at exact points of an ingest.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import structlog

from common.crash import crash_point
from cloud_sync.db import Database
from common.sync_protocol import READING_STREAMS, Batch, BatchError

log = structlog.get_logger(__name__)
CRASH_VARIABLE = "TEST_CLOUD_CRASH"


@dataclass(frozen=True)
class Result:
    status: str  # "stored" | "duplicate"
    last_seq: int


async def ingest(db: Database, batch: Batch) -> Result:
    """Store ``batch`` (already validated and authorised) or recognise it as a retry."""
    now = time.time()
    async with db.transaction() as tx:
        # An upsert that changes nothing but returns the row, locked (PostgreSQL) until commit.
        state = await tx.fetchrow(
            "INSERT INTO streams (device_id, stream, store_id, last_seq, backlog, updated_at)"
            " VALUES ($1, $2, $3, 0, 0, $4) ON CONFLICT (device_id, stream, store_id)"
            " DO UPDATE SET last_seq = streams.last_seq RETURNING last_seq",
            batch.device, batch.stream, batch.store, now,
        )
        assert state is not None
        stored_seq = int(state[0])
        same = await tx.fetchrow(
            "SELECT last_seq, digest FROM batches WHERE device_id = $1 AND stream = $2 AND store_id = $3"
            " AND first_seq = $4",
            batch.device, batch.stream, batch.store, batch.first_seq,
        )
        if same is not None and (same[0], same[1]) == (batch.last_seq, batch.digest):
            return Result("duplicate", stored_seq)
        if batch.prev_seq is not None and batch.prev_seq > stored_seq and batch.first_seq > stored_seq:
            raise Conflict(
                f"{batch.stream} batch follows {batch.prev_seq} but only {stored_seq} is stored yet; "
                "send the batch before it first", stored_seq, status=425,
            )
        if batch.first_seq <= stored_seq or (batch.prev_seq is not None and batch.prev_seq != stored_seq):
            log.warning(
                "batch_overlaps", device=batch.device, stream=batch.stream,
                first_seq=batch.first_seq, last_seq=batch.last_seq, stored_seq=stored_seq,
            )
            raise Conflict(
                f"{batch.stream} sequence {batch.first_seq}..{batch.last_seq} overlaps stored data "
                f"up to {stored_seq} with different content; resume after {stored_seq}",
                stored_seq,
            )
        last_ts = await _store_items(tx, batch)
        crash_point(CRASH_VARIABLE, "items_written")
        await tx.insert_rows(
            "batches", ("device_id", "stream", "store_id", "first_seq", "last_seq", "count", "digest", "received_at"),
            [(batch.device, batch.stream, batch.store, batch.first_seq, batch.last_seq, len(batch.items),
              batch.digest, now)],
        )
        await tx.execute(
            "UPDATE streams SET last_seq = $1, last_ts = coalesce($2, last_ts), backlog = $3, updated_at = $4"
            " WHERE device_id = $5 AND stream = $6 AND store_id = $7",
            batch.last_seq, last_ts, batch.backlog, now, batch.device, batch.stream, batch.store,
        )
        await tx.execute("UPDATE devices SET last_seen = $1 WHERE id = $2", now, batch.device)
        crash_point(CRASH_VARIABLE, "before_commit")
    crash_point(CRASH_VARIABLE, "after_commit")
    return Result("stored", batch.last_seq)


async def _store_items(tx: Any, batch: Batch) -> float | None:
    if batch.stream in READING_STREAMS:
        rows = [
            (batch.device, batch.stream, batch.store, item.seq, item.ts, line.decode())
            for item, line in zip(batch.items, batch.lines, strict=True)
        ]
        await tx.insert_rows("readings", ("device_id", "stream", "store_id", "seq", "ts", "line"), rows)
        return batch.items[-1].ts
    # Documents: the newest version per key wins (a batch may hold several versions of one key);
    # sequence numbers compare within a store, and another store's version is the newer one
    # (the store that uploads now is the one the device runs on).
    latest = {item.key: item for item in batch.items}
    await tx.executemany(
        "INSERT INTO documents (device_id, stream, key, seq, ts, data, store_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (device_id, stream, key) DO UPDATE SET seq = excluded.seq, ts = excluded.ts,"
        " data = excluded.data, store_id = excluded.store_id"
        " WHERE documents.seq < excluded.seq OR documents.store_id <> excluded.store_id",
        [(batch.device, batch.stream, key, item.seq, item.ts, json.dumps(item.data), batch.store)
         for key, item in latest.items()],
    )
    return None


class Conflict(BatchError):
    """409: the batch overlaps stored data (``stored_seq`` is where the device should resume);
    425: the batch it follows is not stored yet (the device sends it again after that one)."""

    def __init__(self, message: str, stored_seq: int, status: int = 409) -> None:
        super().__init__(status, message)
        self.stored_seq = stored_seq


class StreamProgress:
    """The highest sequence number this process has seen stored, per device and stream.

    A device keeps two uploads in flight; the second names the first as ``prev_seq``. When
    the second is decoded first, its ingest is refused (425) and it waits here until the
    first is stored, then tries once more, so decoding one batch overlaps storing the other
    and the device rarely has to resend. With several instances the predecessor may be stored
    by another one; then the wait ends after ``timeout_s`` and the 425 goes to the device.
    """

    def __init__(self) -> None:
        self._stored: dict[tuple[str, str], int] = {}
        self._changed = asyncio.Condition()

    async def stored(self, device: str, stream: str, seq: int) -> None:
        async with self._changed:
            key = (device, stream)
            self._stored[key] = max(self._stored.get(key, 0), seq)
            self._changed.notify_all()

    async def wait_for(self, device: str, stream: str, seq: int, timeout_s: float) -> bool:
        """True once ``seq`` of the stream is stored (as far as this process knows)."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._stored.get((device, stream), 0) >= seq), timeout_s
                )
            except TimeoutError:
                return False
        return True


async def ingest_in_order(db: Database, batch: Batch, progress: StreamProgress, timeout_s: float = 10.0) -> Result:
    """:func:`ingest`, waiting for an in-flight predecessor instead of refusing at once."""
    try:
        result = await ingest(db, batch)
    except Conflict as exc:
        if exc.status != 425 or batch.prev_seq is None:
            raise
        await progress.stored(batch.device, _progress_key(batch), exc.stored_seq)
        log.info("upload_waits_for_predecessor", device=batch.device, stream=batch.stream,
                 prev_seq=batch.prev_seq, stored_seq=exc.stored_seq)
        if not await progress.wait_for(batch.device, _progress_key(batch), batch.prev_seq, timeout_s):
            raise
        result = await ingest(db, batch)
    await progress.stored(batch.device, _progress_key(batch), result.last_seq)
    return result


def _progress_key(batch: Batch) -> str:
    """Sequence numbers count per stream and store."""
    return f"{batch.stream}/{batch.store}"
