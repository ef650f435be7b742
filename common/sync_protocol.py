"""The upload format both sides speak: one gzip'd NDJSON batch per request.

Line 1 is the header ``{"device", "stream", "first_seq", "last_seq", "count", "digest",
"backlog", "prev_seq"}``; every further line is one item ``{"seq", ...}`` in strictly increasing ``seq``
order, the first item's seq being ``first_seq`` and the last one's ``last_seq``. ``digest`` is
the SHA-256 of the item lines exactly as sent (everything after the header's newline), so a
retried batch is recognised byte for byte whatever its header says about the backlog, and a
body damaged on the way is refused instead of stored. ``prev_seq`` (optional) is the last
sequence number of the batch this one follows: it lets a device keep two uploads in flight,
the aggregator storing them strictly in order. ``store`` (optional) is the identity of the
device's store (created with it): a device whose SD card was replaced starts a new store, and
its sequence numbers start again at 1 in a stream of their own at the aggregator, so nothing
of the old or the new store is skipped or overwritten. Stores older than identities send none.

Items per stream: ``readings`` / ``readings_1min`` carry ``{"seq", "ts", "data": {...}}``;
the document streams (``energy``, ``settlements``, ``edi``, ``schedules``, ``prices``: cleared
prices and price forecasts) carry ``{"seq", "key", "data"}``,
where a later seq for the same key is a newer version of that document.

Errors are :class:`BatchError` with the HTTP status the aggregator answers and a message
that names what was wrong; parsing never has side effects.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson  # parsing items is the aggregator's main cost; orjson does it ~3x faster

from common import sync_values as values

READING_STREAMS = ("readings", "readings_1min")
DOCUMENT_STREAMS = ("energy", "settlements", "edi", "schedules", "prices")
STREAMS = READING_STREAMS + DOCUMENT_STREAMS
CONTENT_TYPE = "application/x-nattery-batch+gzip"
MAX_BODY_BYTES = 16 * 1024 * 1024  # compressed
MAX_RAW_BYTES = 128 * 1024 * 1024  # decompressed: a gzip bomb stops here
MAX_ITEMS = 50_000
MAX_LINE_BYTES = 1024 * 1024  # one line (an item; an EDI file is the largest)
MAX_SEQ = 2**53 - 1  # sequence numbers stay exact in any JSON reader, and far from int64's end
INFLATE_CHUNK = 256 * 1024
DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STORE_ID = DEVICE_ID  # the device store's identity; "" for stores older than identities


class BatchError(ValueError):
    """A batch the aggregator refuses: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Item(NamedTuple):
    """What the aggregator needs of an item; ``data`` is kept for documents only (readings
    are stored as their raw line, and keeping thousands of parsed snapshots costs memory)."""

    seq: int
    ts: float | None
    key: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True)
class Batch:
    """A parsed, validated batch; ``lines`` are the raw item lines (stored as sent)."""

    device: str
    stream: str
    first_seq: int
    last_seq: int
    digest: str
    backlog: int
    prev_seq: int | None
    items: list[Item]
    lines: list[bytes]
    store: str = ""


def encode(
    device: str, stream: str, lines: Sequence[bytes], backlog: int, prev_seq: int | None = None, store: str = ""
) -> tuple[bytes, int, int]:
    """A gzip'd batch of already serialised item lines; returns ``(body, first_seq, last_seq)``.

    Compressed line by line (no joined copy of the batch in memory) at level 1: telemetry
    JSON still shrinks about tenfold, and the Pi's CPU is better spent elsewhere.
    """
    first, last = json.loads(lines[0])["seq"], json.loads(lines[-1])["seq"]
    digest = hashlib.sha256()
    for n, line in enumerate(lines):
        if n:
            digest.update(b"\n")
        digest.update(line)
    header = {
        "device": device, "stream": stream, "first_seq": first, "last_seq": last,
        "count": len(lines), "digest": digest.hexdigest(), "backlog": backlog,
        **({} if prev_seq is None else {"prev_seq": prev_seq}),
        **({"store": store} if store else {}),
    }
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(json.dumps(header).encode())]
    parts.extend(deflate.compress(b"\n" + line) for line in lines)
    parts.append(deflate.flush())
    return b"".join(parts), first, last


def reading_line(seq: int, ts: float, data_json: str) -> bytes:
    """An item line for a readings stream, embedding the stored JSON without re-parsing it."""
    return f'{{"seq":{seq},"ts":{ts!r},"data":{data_json}}}'.encode()


def document_line(seq: int, key: str, data_json: str) -> bytes:
    return f'{{"seq":{seq},"key":{json.dumps(key)},"data":{data_json}}}'.encode()


def decode(body: bytes, now: float | None = None) -> Batch:
    """Decompress and validate a batch body; raises :class:`BatchError` (400/413/422).

    ``now`` (epoch seconds, default the clock) bounds the items' times. The body is inflated
    a chunk at a time into lines, each line and the whole capped, so a gzip bomb costs at most
    the cap and is refused as soon as it passes it.
    """
    if len(body) > MAX_BODY_BYTES:
        raise BatchError(413, f"batch body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    now = time.time() if now is None else now
    lines = _inflated_lines(body)
    header = _json(next(lines), "header line")
    if not isinstance(header, dict):
        raise BatchError(400, "header line: expected a JSON object")
    device = _field(header, "device", str)
    stream = _field(header, "stream", str)
    first, last = _field(header, "first_seq", int), _field(header, "last_seq", int)
    count, digest = _field(header, "count", int), _field(header, "digest", str)
    backlog = header.get("backlog", 0)
    prev_seq = header.get("prev_seq")
    store = header.get("store", "")
    if not isinstance(store, str) or (store and not STORE_ID.match(store)):
        raise BatchError(400, f"header.store: got {store!r:.80}, expected 1-64 of A-Z a-z 0-9 _ -")
    if not DEVICE_ID.match(device):
        raise BatchError(400, f"header.device: got {device!r}, expected 1-64 of A-Z a-z 0-9 _ -")
    if stream not in STREAMS:
        raise BatchError(400, f"header.stream: got {stream!r}, allowed: {', '.join(STREAMS)}")
    if not isinstance(backlog, int) or isinstance(backlog, bool) or backlog < 0:
        raise BatchError(400, f"header.backlog: got {backlog!r}, expected a non-negative integer")
    if prev_seq is not None and (not isinstance(prev_seq, int) or isinstance(prev_seq, bool) or prev_seq < 0):
        raise BatchError(400, f"header.prev_seq: got {prev_seq!r}, expected a non-negative integer")
    for name, value, low in (("first_seq", first, 1), ("last_seq", last, 1), ("prev_seq", prev_seq, 0),
                             ("backlog", backlog, 0)):
        if value is not None and value > MAX_SEQ:
            raise BatchError(422, f"header.{name}: got {value}, allowed: {low} to {MAX_SEQ}")
    if not 1 <= count <= MAX_ITEMS:
        raise BatchError(413 if count > MAX_ITEMS else 400, f"header.count: got {count}, allowed: 1 to {MAX_ITEMS}")
    if first < 1 or last < first or (prev_seq is not None and prev_seq >= first):
        after = "" if prev_seq is None else f" after {prev_seq}"
        raise BatchError(422, f"sequence range {first}..{last}{after} is out of order "
                              "(need 1 <= first_seq <= last_seq and prev_seq < first_seq)")
    # Items are parsed as they are inflated: a body of junk lines is refused at the first one.
    digest_of_lines, item_lines, items = hashlib.sha256(), list[bytes](), list[Item]()
    for line in lines:
        if len(item_lines) == count:
            raise BatchError(400, f"header.count is {count} but the batch has more item lines")
        if item_lines:
            digest_of_lines.update(b"\n")
        digest_of_lines.update(line)
        item_lines.append(line)
        items.append(_item(stream, line, len(item_lines), now))
    if digest_of_lines.hexdigest() != digest:
        raise BatchError(400, "digest mismatch: the item lines do not match header.digest (corrupted upload)")
    if len(item_lines) != count:
        raise BatchError(400, f"header.count is {count} but the batch has {len(item_lines)} item lines")
    _check_order(items, first, last)
    return Batch(device, stream, first, last, digest, backlog, prev_seq, items, item_lines, store)


def _inflated_lines(body: bytes) -> Iterator[bytes]:
    """The body's lines, inflated a chunk at a time; at least one (maybe empty) line."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pending, data, total, number = b"", body, 0, 1
    while not inflater.eof:
        try:
            chunk = inflater.decompress(data, INFLATE_CHUNK)
        except zlib.error as exc:
            raise BatchError(400, f"body is not valid gzip ({exc})") from None
        data = inflater.unconsumed_tail
        if not chunk and not data:
            raise BatchError(400, "body is not valid gzip (truncated)")
        total += len(chunk)
        if total > MAX_RAW_BYTES:
            raise BatchError(413, f"batch decompresses to more than {MAX_RAW_BYTES} bytes")
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield line
            number += 1
        if len(pending) > MAX_LINE_BYTES:
            raise BatchError(413, f"line {number} is longer than {MAX_LINE_BYTES} bytes")
    if inflater.unused_data:
        raise BatchError(400, f"body: {len(inflater.unused_data)} bytes after the end of the gzip stream")
    yield pending


def _json(line: bytes, what: str) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BatchError(400, f"{what}: not valid JSON ({exc})") from None


def _field(obj: dict[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BatchError(400, f"header.{name}: got {value!r:.80}, expected {'an integer' if kind is int else 'a string'}")
    return value


def _item(stream: str, line: bytes, n: int, now: float) -> Item:
    item = _json(line, f"item {n}")
    if not isinstance(item, dict):
        raise BatchError(400, f"item {n}: expected a JSON object")
    seq = item.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise BatchError(400, f"item {n}.seq: got {seq!r}, expected an integer")
    if not 1 <= seq <= MAX_SEQ:
        raise BatchError(422, f"item {n}.seq: got {seq}, allowed: 1 to {MAX_SEQ}")
    data = item.get("data")
    if not isinstance(data, dict):
        raise BatchError(400, f"item {n}.data: expected a JSON object")
    try:
        if stream in READING_STREAMS:
            ts = item.get("ts")
            if not values.is_number(ts):
                raise BatchError(400, f"item {n}.ts: got {ts!r}, expected epoch seconds")
            values.check_reading(data)
            return Item(seq, values.check_time("ts", ts, now), None, None)
        key = item.get("key")
        if not isinstance(key, str):
            raise BatchError(400, f"item {n}.key: got {key!r}, expected a string")
        return Item(seq, values.check_document(stream, data, now), key, data)
    except values.ValueProblem as problem:
        raise BatchError(422, f"item {n}.{problem}") from None


def _check_order(items: list[Item], first: int, last: int) -> None:
    previous = first - 1
    for n, item in enumerate(items, start=1):
        if item.seq <= previous:
            raise BatchError(422, f"item {n}: seq {item.seq} is out of order (after {previous})")
        previous = item.seq
    if items[0].seq != first or items[-1].seq != last:
        raise BatchError(
            422, f"items run {items[0].seq}..{items[-1].seq} but the header says {first}..{last}"
        )
