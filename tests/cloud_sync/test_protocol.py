"""The batch format: what the device encodes, the aggregator decodes; refusals name the problem."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from common import sync_protocol as protocol
from common.sync_protocol import BatchError
from tools.bench.cloud_abuse import bombs


def lines(n: int) -> list[bytes]:
    return [protocol.reading_line(s, 1_795_000_000.5 + s, '{"roles":{"grid_w":1.5},"registers":{}}')
            for s in range(1, n + 1)]


def test_round_trip_keeps_the_lines_byte_for_byte() -> None:
    body, first, last = protocol.encode("pi-1", "readings", lines(3), backlog=7)
    batch = protocol.decode(body)
    assert (batch.device, batch.stream, batch.first_seq, batch.last_seq, batch.backlog) == ("pi-1", "readings", 1, 3, 7)
    assert (first, last) == (1, 3)
    assert batch.lines == lines(3)
    assert [i.seq for i in batch.items] == [1, 2, 3]
    assert batch.items[0].ts == 1_795_000_001.5


def test_the_digest_ignores_the_header_so_retries_match() -> None:
    a = protocol.decode(protocol.encode("pi-1", "readings", lines(3), backlog=7)[0])
    b = protocol.decode(protocol.encode("pi-1", "readings", lines(3), backlog=0)[0])
    assert a.digest == b.digest


def test_documents_carry_key_and_data() -> None:
    line = protocol.document_line(4, "1795000000", '{"ts":1795000000,"pv_wh":1.0}')
    (item,) = protocol.decode(protocol.encode("pi-1", "energy", [line], 0)[0]).items
    assert (item.seq, item.key, item.ts, item.data) == (4, "1795000000", 1795000000.0, {"ts": 1795000000, "pv_wh": 1.0})


def _reencode(header: dict, items: list[bytes]) -> bytes:
    return gzip.compress(json.dumps(header).encode() + b"\n" + b"\n".join(items))


@pytest.mark.parametrize(
    "items, message",
    [
        ([b'{"seq": 1, "ts": "noon", "data": {}}'], "item 1.ts: got 'noon', expected epoch seconds"),
        ([b'{"seq": 1, "ts": 1, "data": []}'], "item 1.data: expected a JSON object"),
        ([b'{"seq": true, "ts": 1, "data": {}}'], "item 1.seq: got True, expected an integer"),
        ([b'{"seq": 1, "ts": 1, "data": {}'], "item 1: not valid JSON"),
        ([b'[1]'], "item 1: expected a JSON object"),
    ],
)
def test_malformed_items_are_named(items: list[bytes], message: str) -> None:
    import hashlib

    raw = b"\n".join(items)
    header = {"device": "pi-1", "stream": "readings", "first_seq": 1, "last_seq": 1, "count": len(items),
              "digest": hashlib.sha256(raw).hexdigest()}
    with pytest.raises(BatchError, match=message.replace("(", r"\(").replace("[", r"\[")) as caught:
        protocol.decode(_reencode(header, items))
    assert caught.value.status == 400


def test_too_many_items_is_413() -> None:
    header = {"device": "pi-1", "stream": "readings", "first_seq": 1, "last_seq": 1,
              "count": protocol.MAX_ITEMS + 1, "digest": ""}
    with pytest.raises(BatchError, match=f"header.count: got {protocol.MAX_ITEMS + 1}") as caught:
        protocol.decode(_reencode(header, []))
    assert caught.value.status == 413


def _peak_while_refusing(body: bytes) -> tuple[int, str]:
    tracemalloc.start()
    try:
        with pytest.raises(BatchError) as caught:
            protocol.decode(body)
        return tracemalloc.get_traced_memory()[1], str(caught.value)
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_refused_before_it_costs_more_than_the_cap() -> None:
    one_line = gzip.compress(b"{" + b" " * (protocol.MAX_RAW_BYTES + 10) + b"}")
    peak, message = _peak_while_refusing(one_line)
    assert message == f"line 1 is longer than {protocol.MAX_LINE_BYTES} bytes"
    assert peak < protocol.MAX_RAW_BYTES / 4
    peak, message = _peak_while_refusing(bombs("pi-1")["valid_items"])
    assert message == f"batch decompresses to more than {protocol.MAX_RAW_BYTES} bytes"
    assert peak < protocol.MAX_RAW_BYTES * 1.25  # the cap, not twice it
    peak, message = _peak_while_refusing(bombs("pi-1")["junk_lines"])
    assert message.startswith("item 1: not valid JSON")
    assert peak < protocol.MAX_RAW_BYTES / 4
