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
import functools
import json
import time
from dataclasses import dataclass

import structlog

from sqlalchemy import Double, Executable, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.db import Database, Kind, insert_rows, upsert
from cloud_sync.schema import sync as t
from common.crash import crash_point
from common.sync_protocol import READING_STREAMS, Batch, BatchError

log = structlog.get_logger(__name__)
CRASH_VARIABLE = "TEST_CLOUD_CRASH"


@dataclass(frozen=True)
class Result:
    status: str  # "stored" | "duplicate"
    last_seq: int


# The statements of an ingest, built once (building one costs more than running it): values
# are bound per batch by name (b_…: a bound name may not be a column's).
_s, _b = t.streams.c, t.batches.c
_STREAM = (_s.device_id == bindparam("b_device"), _s.stream == bindparam("b_stream"), _s.store_id == bindparam("b_store"))
_SAME_BATCH = select(_b.last_seq, _b.digest).where(
    _b.device_id == bindparam("b_device"), _b.stream == bindparam("b_stream"), _b.store_id == bindparam("b_store"),
    _b.first_seq == bindparam("b_first"))
_RECORD_BATCH = insert(t.batches)
_ADVANCE = update(t.streams).where(*_STREAM).values(
    last_seq=bindparam("b_last"), backlog=bindparam("b_backlog"), updated_at=bindparam("b_now"),
    last_ts=func.coalesce(bindparam("b_newest", type_=Double()), _s.last_ts))  # documents leave it
_SEEN = update(t.devices).where(t.devices.c.id == bindparam("b_device")).values(last_seen=bindparam("b_now"))


@functools.cache
def _claim(kind: Kind) -> Executable:
    """An upsert of the stream row that changes nothing but returns it, locked (PostgreSQL) until commit."""
    return (upsert(kind, t.streams)
            .values(device_id=bindparam("b_device"), stream=bindparam("b_stream"), store_id=bindparam("b_store"),
                    last_seq=0, backlog=0, updated_at=bindparam("b_now"))
            .on_conflict_do_update(index_elements=t.streams.primary_key.columns, set_={"last_seq": _s.last_seq})
            .returning(_s.last_seq))


@functools.cache
def _keep_latest(kind: Kind) -> Executable:
    """Documents: the newest version per key wins; sequence numbers compare within a store, and
    another store's version is the newer one (the store that uploads now is the one the device
    runs on)."""
    new, d = upsert(kind, t.documents), t.documents.c
    return new.on_conflict_do_update(
        index_elements=t.documents.primary_key.columns,
        set_={"seq": new.excluded.seq, "ts": new.excluded.ts, "data": new.excluded.data,
              "store_id": new.excluded.store_id},
        where=(d.seq < new.excluded.seq) | (d.store_id != new.excluded.store_id),
    )


async def ingest(db: Database, batch: Batch) -> Result:
    """Store ``batch`` (already validated and authorised) or recognise it as a retry."""
    now = time.time()
    stream = {"b_device": batch.device, "b_stream": batch.stream, "b_store": batch.store}
    async with db.begin() as conn:
        stored_seq = int((await conn.execute(_claim(db.kind), {**stream, "b_now": now})).scalar_one())
        same = (await conn.execute(_SAME_BATCH, {**stream, "b_first": batch.first_seq})).first()
        if same is not None and (same.last_seq, same.digest) == (batch.last_seq, batch.digest):
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
        last_ts = await _store_items(db, conn, batch)
        crash_point(CRASH_VARIABLE, "items_written")
        await conn.execute(_RECORD_BATCH, {
            "device_id": batch.device, "stream": batch.stream, "store_id": batch.store, "first_seq": batch.first_seq,
            "last_seq": batch.last_seq, "count": len(batch.items), "digest": batch.digest, "received_at": now})
        await conn.execute(_ADVANCE, {**stream, "b_last": batch.last_seq, "b_backlog": batch.backlog, "b_now": now,
                                      "b_newest": last_ts})
        await conn.execute(_SEEN, {"b_device": batch.device, "b_now": now})
        crash_point(CRASH_VARIABLE, "before_commit")
    crash_point(CRASH_VARIABLE, "after_commit")
    return Result("stored", batch.last_seq)


async def _store_items(db: Database, conn: AsyncConnection, batch: Batch) -> float | None:
    if batch.stream in READING_STREAMS:
        rows = [
            (batch.device, batch.stream, batch.store, item.seq, item.ts, line.decode())
            for item, line in zip(batch.items, batch.lines, strict=True)
        ]
        await insert_rows(conn, t.readings, rows)
        return batch.items[-1].ts
    latest = {item.key: item for item in batch.items}  # a batch may hold several versions of one key
    await conn.execute(_keep_latest(db.kind), [
        {"device_id": batch.device, "stream": batch.stream, "key": key, "seq": item.seq, "ts": item.ts,
         "data": json.dumps(item.data), "store_id": batch.store} for key, item in latest.items()])
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
