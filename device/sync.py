"""Cloud sync: upload the store's streams to the aggregator, at least once, in order.

Streams: ``readings`` (or ``readings_1min``, per ``cloud.readings``), then ``energy``,
``settlements`` and ``edi`` (the outbox). After the uploads, the EDI gateway's answers to the
uploaded files (CONTRL/APERAK) and its reconciliation come back (``GET /v1/edi/answers``), and
this home's energy-sharing trades of today and this month (``GET /v1/devices/{id}/community``).
Each upload is a gzip'd batch (see :mod:`common.sync_protocol`) with the device id and its sequence range; the aggregator stores
each range exactly once, so retrying is always safe. The cursor (last acknowledged sequence
per stream) lives in SQLite and is written only after the aggregator acknowledged, so a
crash at any point resends at most one batch, which the aggregator recognises.

Memory stays bounded whatever the backlog: batches are read from SQLite in chunks of
``cloud.batch_size``, two are in flight (each names the one it follows, so the aggregator
stores them in order) and at most two more are prepared. Failures back off
exponentially with full jitter up to ``cloud.backoff_max_s``. ``stats`` (for ``health``)
has the state, last success, lag and backlog per stream.

At start (and after a 409) the client asks the aggregator where each stream stands and
resumes there: ahead of the local cursor means a batch was stored but its acknowledgement
lost; behind means the aggregator lost data, which is then sent again while still retained.

``TEST_SYNC_CRASH=<point>:<n>`` (``before_upload``, ``after_ack``) SIGKILLs the process at
that point, for the crash tests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import json
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import structlog

from common import sync_protocol as protocol
from common import sync_values
from common.backoff import Backoff
from common.crash import crash_point
from common.utc import format_utc
from device.config import Config
from device.store import ROLE_COLUMNS, AsyncStore, Retention, Store

log = structlog.get_logger(__name__)
CRASH_VARIABLE = "TEST_SYNC_CRASH"
PREFETCH = 2  # batches prepared ahead of those in flight
IN_FLIGHT = 2  # uploads at once: the aggregator decodes one while it stores the other
ANSWERS_EVERY_S = 3600.0  # the EDI gateway's reconciliation, fetched at most this often without a new file


class SyncError(Exception):
    """An upload round failed; it is retried after a backoff, or after ``retry_after`` seconds
    when the aggregator asked for that (429, 503) and that is longer."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _TooEarly(Exception):
    """425: the aggregator has not stored the batch this one follows (yet)."""


class _Resume(Exception):
    """The aggregator holds a different high-water mark: continue from ``last_seq``."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq


class _Refused(Exception):
    """422: the aggregator refused a value in ``batch`` (its message names item and field)."""

    def __init__(self, batch: _Prepared, error: str) -> None:
        super().__init__(error)
        self.batch = batch


@dataclass(frozen=True)
class _Prepared:
    body: bytes
    first_seq: int
    last_seq: int
    count: int
    repaired: bool = False


class SyncClient:
    """Uploads the store to ``cfg.cloud.url``; ``await run()`` as a background task."""

    def __init__(self, cfg: Config, store: AsyncStore, *, rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.time) -> None:
        if not cfg.cloud.url:
            raise ValueError("cloud.url: empty; set it (or NATTERY_CLOUD_URL / --cloud URL) to sync")
        if not cfg.cloud.credential:
            raise ValueError("cloud.credential: empty; set NATTERY_CLOUD_CREDENTIAL to the device's credential")
        self.cfg = cfg.cloud
        self.device_id = cfg.device.id
        self._zone = ZoneInfo(cfg.device.timezone)
        self.store = store
        self.clock = clock  # the appliance's time (energy slots end on it), not the network's
        if cfg.cloud.backoff_max_s < cfg.cloud.backoff_min_s:
            raise ValueError(
                f"cloud.backoff_max_s: {cfg.cloud.backoff_max_s}; allowed: at least cloud.backoff_min_s "
                f"({cfg.cloud.backoff_min_s})"
            )
        self.backoff = Backoff(cfg.cloud.backoff_min_s, cfg.cloud.backoff_max_s, jitter=1.0, rng=rng)
        self._url = cfg.cloud.url.rstrip("/")
        self._batch_size = cfg.cloud.batch_size
        readings = "readings" if cfg.cloud.readings == "raw" else "readings_1min"
        self.streams = (readings, *protocol.DOCUMENT_STREAMS)
        self._session: aiohttp.ClientSession | None = None
        self._encoder: ThreadPoolExecutor | None = None
        self._resynced: set[str] = set()
        self._store_id: str | None = None  # the store's identity, sent with every batch
        self._after_gap: set[str] = set()  # streams whose next batch follows items never stored
        self._answers_at = -math.inf  # when the EDI gateway's answers were last fetched (monotonic)
        self.stats: dict[str, Any] = {
            "state": "starting", "url": self._url, "last_success": None, "last_attempt": None,
            "last_error": None, "consecutive_failures": 0, "next_retry_s": None, "lag_s": None,
            "streams": {s: {"cursor": None, "pending": None, "lag_s": None, "batches": 0, "items": 0, "bytes": 0}
                        for s in self.streams},
        }

    # --- running ------------------------------------------------------------------------
    async def run(self) -> None:
        """Sync forever: a round every ``interval_s`` when caught up, backoff when failing."""
        async with self._client():
            while True:
                await asyncio.sleep(await self._round_then_delay())

    async def drain(self, max_failures: int | None = None) -> None:
        """Sync until nothing is pending (retrying with backoff); for ``nattery sync --drain``."""
        async with self._client():
            while True:
                delay = await self._round_then_delay()
                if self.stats["consecutive_failures"] == 0:
                    return
                if max_failures is not None and self.stats["consecutive_failures"] >= max_failures:
                    raise SyncError(self.stats["last_error"])
                await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def _client(self) -> Any:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s, connect=min(10.0, self.cfg.timeout_s))
        async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
            self._session = session
            # One encoding thread: the work is sequential anyway, and every extra thread that
            # allocates batch-sized buffers keeps its own malloc arena (resident memory).
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-encode")
            try:
                yield
            finally:
                self._session = None
                self._encoder.shutdown(wait=True)
                self._encoder = None

    async def _round_then_delay(self) -> float:
        self.stats["last_attempt"] = format_utc()
        try:
            await self.sync_round()
        except Exception as exc:
            failures = self.stats["consecutive_failures"] + 1
            delay = self.backoff.delay(failures)
            if isinstance(exc, SyncError) and exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, self.cfg.backoff_max_s))
            if failures == 1:
                log.warning("cloud_sync_failing", error=str(exc), retry_in_s=round(delay, 1),
                            exc_info=not isinstance(exc, SyncError))
            self.stats.update(state="failing", last_error=str(exc), consecutive_failures=failures,
                              next_retry_s=round(delay, 2))
            with contextlib.suppress(Exception):
                await self._update_pending()
            return delay
        if self.stats["consecutive_failures"]:
            log.info("cloud_sync_recovered", after_failures=self.stats["consecutive_failures"])
        self.stats.update(state="ok", last_success=format_utc(), consecutive_failures=0, next_retry_s=None)
        return self.cfg.interval_s

    async def sync_round(self) -> int:
        """Upload everything pending, stream by stream (readings first); returns items sent."""
        sent = 0
        for stream in self.streams:
            if stream == "energy":  # derive the slots that ended since the last round
                await self.store.call(Store.update_energy_slots, self.clock())
            sent += await self._sync_stream(stream)
        if "edi" in self.streams:
            await self._fetch_edi_answers()
        await self._fetch_community()
        await self._update_pending()
        return sent

    async def _fetch_edi_answers(self) -> None:
        """The gateway's answers to the uploaded EDI files not answered yet, and its
        reconciliation of this home's metering location (``GET /v1/edi/answers``), into the store:
        when a file waits for its answer, else every ``ANSWERS_EVERY_S`` (the official values
        arrive days later, at any time). Skipped while the store has no EDI file; an aggregator
        without the gateway (404) is left alone."""
        if not await self.store.call(Store.recent_edi_files, 1):
            return
        names = await self.store.call(Store.unacknowledged_edi_files, 200)
        if not names and time.monotonic() - self._answers_at < ANSWERS_EVERY_S:
            return
        status, answer = await self._request("GET", "/v1/edi/answers", params=[("name", n) for n in names])
        if status == 404:
            return
        if status != 200 or not isinstance(answer.get("acks"), list) or not isinstance(answer.get("reconciliation"), list):
            raise SyncError(f"GET /v1/edi/answers: HTTP {status}: {answer.get('error')}")
        await self.store.call(Store.record_edi_answers, answer["acks"], answer["reconciliation"], time.time())
        self._answers_at = time.monotonic()

    async def _fetch_community(self) -> None:
        """This home's energy-sharing trades of today and of this month (local time), as the
        aggregator sums them up (``GET /v1/devices/{id}/community``), into the store. An
        aggregator without communities (404) is left alone."""
        now = time.time()
        today = datetime.fromtimestamp(now, self._zone).date()
        for period, first in (("today", today), ("month", today.replace(day=1))):
            start = int(datetime.combine(first, datetime.min.time(), self._zone).timestamp())
            status, answer = await self._request("GET", f"/v1/devices/{self.device_id}/community",
                                                 params={"from": str(start), "to": str(int(now) + 1)})
            if status == 404:
                return
            if status != 200 or not isinstance(answer.get("communities"), list):
                raise SyncError(f"GET /v1/devices/{self.device_id}/community: HTTP {status}: {answer.get('error')}")
            await self.store.call(Store.record_community_summary, period, start, answer["communities"], now)

    # --- one stream -----------------------------------------------------------------------
    async def _sync_stream(self, stream: str) -> int:
        if self._store_id is None:
            self._store_id = await self.store.call(Store.store_id)
        if stream not in self._resynced:
            await self._resume_from_aggregator(stream)
            self._resynced.add(stream)
        while True:
            try:
                try:
                    return await self._upload_pending(stream)
                except _Refused as refused:
                    await self._upload_repaired(stream, refused.batch, str(refused))
            except _Resume as resume:
                await self._set_cursor(stream, resume.last_seq, "the aggregator's high-water mark")

    async def _upload_pending(self, stream: str) -> int:
        cursor = await self.store.call(Store.sync_cursor, stream)
        queue: asyncio.Queue[_Prepared | None] = asyncio.Queue(maxsize=PREFETCH)
        first_prev = None if stream in self._after_gap else cursor
        producer = asyncio.create_task(self._produce(stream, cursor, first_prev, queue))
        in_flight: collections.deque[tuple[_Prepared, asyncio.Task[None]]] = collections.deque()
        sent = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(in_flight) < IN_FLIGHT:
                    if (batch := await queue.get()) is None:
                        exhausted = True
                        break
                    crash_point(CRASH_VARIABLE, "before_upload")
                    in_flight.append((batch, asyncio.create_task(self._upload(stream, batch))))
                if not in_flight:
                    break
                batch, upload = in_flight.popleft()
                try:
                    await upload
                except _TooEarly:
                    await self._upload(stream, batch)  # the batch before it is stored by now
                crash_point(CRASH_VARIABLE, "after_ack")
                await self.store.call(Store.set_sync_cursor, stream, batch.last_seq)
                self._after_gap.discard(stream)
                counters = self.stats["streams"][stream]
                counters["cursor"] = batch.last_seq
                counters["batches"] += 1
                counters["items"] += batch.count
                counters["bytes"] += len(batch.body)
                sent += batch.count
            await producer  # re-raises a failure to read or encode
        finally:
            for _, upload in in_flight:
                upload.cancel()
            if not producer.done():
                producer.cancel()
            await asyncio.gather(producer, *(upload for _, upload in in_flight), return_exceptions=True)
        return sent

    async def _produce(
        self, stream: str, after: int, prev_seq: int | None, queue: asyncio.Queue[_Prepared | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while rows := await self._fetch(stream, after):
                backlog, _ = await self.store.call(Store.pending, stream, rows[-1][0])
                prepared = await loop.run_in_executor(self._encoder, self._encode, stream, rows, backlog, prev_seq)
                del rows  # the next chunk must not sit in memory beside this one
                await queue.put(prepared)
                after = prev_seq = prepared.last_seq
        except Exception:
            await queue.put(None)  # wake the consumer; it awaits this task and sees the error
            raise
        await queue.put(None)

    async def _fetch(self, stream: str, after: int) -> list[tuple[Any, ...]]:
        if stream == "readings":
            return await self.store.call(Store.readings_after, after, self._batch_size)
        if stream == "readings_1min":
            return await self.store.call(Store.minute_readings_after, after, self._batch_size)
        return await self.store.call(Store.outbox_after, stream, after, self._batch_size)

    def _encode(self, stream: str, rows: list[tuple[Any, ...]], backlog: int, prev_seq: int | None) -> _Prepared:
        """Runs in a worker thread: serialising and compressing is the CPU-heavy part."""
        if stream == "readings":
            lines = [protocol.reading_line(seq, ts, data) for seq, ts, data in rows]
        elif stream == "readings_1min":
            lines = [
                protocol.reading_line(minute, minute * 60, json.dumps(
                    {"samples": n, "roles": dict(zip(ROLE_COLUMNS, means, strict=True))}))
                for minute, n, *means in rows
            ]
        else:
            lines = [protocol.document_line(seq, key, data) for seq, key, data in rows]
        # The backlog (items still waiting after this batch) is for the operators' view.
        body, first, last = protocol.encode(
            self.device_id, stream, lines, backlog=backlog, prev_seq=prev_seq, store=self._store_id or "")
        return _Prepared(body, first, last, len(lines))

    async def _upload(self, stream: str, batch: _Prepared) -> None:
        status, answer = await self._request(
            "POST", f"/v1/ingest/{stream}", data=batch.body,
            headers={"Content-Type": protocol.CONTENT_TYPE},
        )
        if status == 200:
            return
        if status == 425:
            raise _TooEarly(f"{stream} {batch.first_seq}..{batch.last_seq}: HTTP 425: {answer.get('error')}")
        if status == 409 and isinstance(answer.get("last_seq"), int):
            log.error("cloud_sync_conflict", stream=stream, first_seq=batch.first_seq,
                      last_seq=batch.last_seq, error=answer.get("error"))
            raise _Resume(answer["last_seq"])
        if status == 422 and not batch.repaired:
            raise _Refused(batch, str(answer.get("error")))
        if status == 413 and self._batch_size > 1:
            self._batch_size = max(1, self._batch_size // 2)
            log.warning("cloud_sync_batch_too_large", stream=stream, batch_size=self._batch_size)
        raise SyncError(f"{stream} {batch.first_seq}..{batch.last_seq}: HTTP {status}: {answer.get('error')}")

    async def _upload_repaired(self, stream: str, batch: _Prepared, error: str) -> None:
        """The refused batch again without the values the aggregator cannot take (an inverter
        that once reported a state of charge of 255 % must not stop every later upload): each
        refused value is left out, an item with an impossible time is not sent at all, and the
        store gets a warning event saying what was left out. It follows no batch (``prev_seq``
        omitted), and neither does the next one, since items left out leave a gap."""
        repaired, dropped, removed = await asyncio.get_running_loop().run_in_executor(
            self._encoder, self._repair, stream, batch)
        log.warning("cloud_sync_repaired", stream=stream, first_seq=batch.first_seq, last_seq=batch.last_seq,
                    refused=error, items_left_out=dropped, values_left_out=removed[:20])
        await self.store.call(
            Store.add_event, "warning", "cloud_sync",
            f"{stream} {batch.first_seq}..{batch.last_seq}: the aggregator refused ({error}); "
            f"sent without {len(removed)} impossible values, {len(dropped)} items with an impossible time not sent",
            {"values_left_out": removed[:100], "items_left_out": dropped[:100]},
        )
        if repaired is not None:
            await self._upload(stream, repaired)
        await self.store.call(Store.set_sync_cursor, stream, batch.last_seq)
        self._after_gap.add(stream)

    def _repair(self, stream: str, batch: _Prepared) -> tuple[_Prepared | None, list[int], list[str]]:
        """Runs in the encoding thread: ``(batch or None when nothing is left, seqs left out,
        "seq:field" of each value left out)``."""
        head, *lines = gzip.decompress(batch.body).split(b"\n")
        header, now = json.loads(head), time.time()
        kept: list[bytes] = []
        dropped: list[int] = []
        removed: list[str] = []
        for line in lines:
            item = json.loads(line)
            fixed, fields = sync_values.repair(stream, item, now)
            removed.extend(f"{item['seq']}:{field}" for field in fields)
            if fixed is None:
                dropped.append(item["seq"])
            else:
                kept.append(line if not fields else json.dumps(fixed, separators=(",", ":")).encode())
        if not kept:
            return None, dropped, removed
        body, first, last = protocol.encode(
            self.device_id, stream, kept, backlog=header.get("backlog", 0), store=self._store_id or "")
        return _Prepared(body, first, last, len(kept), repaired=True), dropped, removed

    async def _resume_from_aggregator(self, stream: str) -> None:
        """Where the aggregator stands with *this store's* items of ``stream``: a new store (a
        replaced SD card) starts a stream of its own at 0, whatever the old store uploaded."""
        status, answer = await self._request("GET", f"/v1/streams/{stream}", params={"store": self._store_id or ""})
        if status != 200 or not isinstance(answer.get("last_seq"), int):
            raise SyncError(f"{stream}: cannot read the aggregator's position: HTTP {status}: {answer.get('error')}")
        local = await self.store.call(Store.sync_cursor, stream)
        if answer["last_seq"] != local:
            await self._set_cursor(stream, answer["last_seq"], "the aggregator's position at start")

    async def _set_cursor(self, stream: str, last_seq: int, why: str) -> None:
        local = await self.store.call(Store.sync_cursor, stream)
        log.info("cloud_sync_resume", stream=stream, local_cursor=local, aggregator=last_seq, reason=why)
        await self.store.call(Store.set_sync_cursor, stream, last_seq)
        self.stats["streams"][stream]["cursor"] = last_seq

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        assert self._session is not None, "use run() or drain()"
        headers = {"Authorization": f"Bearer {self.cfg.credential}", **kwargs.pop("headers", {})}
        try:
            async with self._session.request(method, self._url + path, headers=headers, **kwargs) as resp:
                try:
                    answer = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    answer = {"error": (await resp.text())[:200]}
                answer = answer if isinstance(answer, dict) else {}
                if resp.status in (429, 503):  # the aggregator says when to come back
                    raise SyncError(f"{method} {path}: HTTP {resp.status}: {answer.get('error')}",
                                    retry_after=_seconds(resp.headers.get("Retry-After")))
                return resp.status, answer
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SyncError(f"{method} {self._url}{path}: {type(exc).__name__}: {exc}".rstrip(": ")) from None

    async def _update_pending(self) -> None:
        now = time.time()
        lags = []
        for stream in self.streams:
            cursor = await self.store.call(Store.sync_cursor, stream)
            pending, oldest = await self.store.call(Store.pending, stream, cursor)
            lag = 0.0 if not pending or oldest is None else round(max(now - oldest, 0.0), 1)
            self.stats["streams"][stream].update(cursor=cursor, pending=pending, lag_s=lag)
            lags.append(lag)
        self.stats["lag_s"] = max(lags)


async def run_sync(cfg: Config, drain: bool = False) -> dict[str, Any]:
    """``nattery sync``: sync the configured store until stopped, or until drained."""
    async with AsyncStore(cfg.db_path, Retention.from_settings(cfg.store)) as store:
        client = SyncClient(cfg, store)
        if drain:
            await client.drain()
        else:
            await client.run()
        return client.stats


def _seconds(retry_after: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the aggregator never sends the HTTP-date form)."""
    try:
        return max(float(retry_after), 0.0) if retry_after is not None else None
    except ValueError:
        return None
