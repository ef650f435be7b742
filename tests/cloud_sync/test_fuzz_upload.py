"""Fuzzing the upload path of a real aggregator (SQLite and PostgreSQL) with hypothesis.

Every generated batch is answered with a JSON error of status 4xx (or stored exactly, when the
mutation happened to leave it valid); a refused batch stores nothing, an item-level refusal names
the item, and the aggregator keeps answering. The example budget is fixed and the generation
derandomised, so CI runs the same examples in the same time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import sync_protocol as protocol
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url  # noqa: F401

BUDGET = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NOW = time.time()
COUNT = 4


def post(agg: Aggregator, credential: str, stream: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{agg.url}/v1/ingest/{stream}", data=body, method="POST",
        headers={"Authorization": f"Bearer {credential}", "Content-Type": protocol.CONTENT_TYPE},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def encode(device: str, stream: str, items: list[Any], header: dict[str, Any] | None = None) -> bytes:
    """A batch of ``items`` as given (NaN and Infinity included); the header's range is the
    unmutated one (seqs 1..COUNT), its digest and count match the lines."""
    lines = [json.dumps(item).encode() for item in items]
    head = {"device": device, "stream": stream, "first_seq": 1, "last_seq": COUNT, "count": len(lines),
            "digest": hashlib.sha256(b"\n".join(lines)).hexdigest(), "backlog": 0, **(header or {})}
    return gzip.compress(json.dumps(head).encode() + b"\n" + b"\n".join(lines))


def valid_readings() -> list[dict[str, Any]]:
    return [{"seq": s, "ts": NOW - 100 + s, "data": {"roles": {"soc_pct": 50.0, "grid_w": 10.0 * s, "state": "ok"},
                                                   "registers": {"battery_voltage": 52.1}}} for s in range(1, COUNT + 1)]


def valid_slots() -> list[dict[str, Any]]:
    slot = int(NOW) // 900 * 900 - 3600
    return [{"seq": s, "key": str(slot + s * 900), "data": {"ts": slot + s * 900, "import_wh": 12.5, "pv_wh": 3.0,
                                                          "complete": 1, "source": "counter"}}
            for s in range(1, COUNT + 1)]


# Values no stream allows where a number belongs.
NOT_A_NUMBER: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, None, True, "12", [], {}]),
    st.text(max_size=5), st.lists(st.integers(), min_size=1, max_size=3),
)
NOT_A_TIME = st.one_of(
    NOT_A_NUMBER, st.floats(max_value=NOW - 6 * 366 * 86_400, allow_nan=False),
    st.floats(min_value=NOW + 2 * 86_400, allow_nan=False), st.integers(min_value=2**63, max_value=2**70),
)
NOT_A_SEQ = st.one_of(
    NOT_A_NUMBER, st.integers(max_value=0), st.integers(min_value=protocol.MAX_SEQ + 1, max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
)


def reading_mutation() -> st.SearchStrategy[tuple[str, Any]]:
    """(path inside an item, a value that path must not hold)."""
    return st.one_of(
        st.tuples(st.just("ts"), NOT_A_TIME),
        st.tuples(st.just("seq"), NOT_A_SEQ),
        st.tuples(st.just("data"), st.one_of(st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=2))),
        st.tuples(st.just("data.ts"), st.one_of(st.integers(), st.text(max_size=3))),
        st.tuples(st.just("data.roles.soc_pct"), st.one_of(NOT_A_NUMBER.filter(lambda v: not isinstance(v, (str, type(None), bool))),
                                                       st.floats(min_value=100.001, allow_nan=False),
                                                       st.floats(max_value=-0.001, allow_nan=False))),
        st.tuples(st.just("data.roles.grid_w"), st.one_of(
            st.floats(min_value=1.0001e6, allow_nan=False), st.floats(max_value=-1.0001e6, allow_nan=False),
            st.just([1]), st.just({"w": 1}), st.text(min_size=257, max_size=300))),
        st.tuples(st.just("data.registers.x"), st.one_of(st.just([]), st.just({}), st.floats(min_value=1.01e15),
                                                         st.sampled_from([math.nan, math.inf]))),
    )


def slot_mutation() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.tuples(st.just("seq"), NOT_A_SEQ),
        st.tuples(st.just("key"), st.one_of(st.none(), st.integers(), st.lists(st.text(), max_size=2))),
        st.tuples(st.just("data.ts"), NOT_A_TIME),
        st.tuples(st.sampled_from(["data.import_wh", "data.pv_wh", "data.export_wh"]),
                  st.one_of(NOT_A_NUMBER.filter(lambda v: v is not None), st.floats(max_value=-0.001, allow_nan=False),
                            st.floats(min_value=1.01e12))),
    )


def mutate(items: list[dict[str, Any]], n: int, path: str, value: Any) -> list[dict[str, Any]]:
    items = json.loads(json.dumps(items))
    target = items[n]
    *parents, leaf = path.split(".")
    for part in parents:
        target = target[part]
    target[leaf] = value
    return items


def stored(agg: Aggregator, device: str) -> tuple[Any, ...]:
    return (agg.rows(device), agg.documents(device, "energy"))


def check_refused(agg: Aggregator, device: str, credential: str, stream: str, body: bytes,
                  before: tuple[Any, ...], names: str | None) -> None:
    status, answer = post(agg, credential, stream, body)
    assert 400 <= status < 500, (status, answer)
    assert isinstance(answer.get("error"), str) and answer["error"], answer
    if names is not None:
        assert names in answer["error"], answer
    assert stored(agg, device) == before
    assert agg.proc is not None and agg.proc.poll() is None


STREAMS = {"readings": (valid_readings, reading_mutation), "energy": (valid_slots, slot_mutation)}


@pytest.mark.parametrize("stream", list(STREAMS))
@BUDGET
@given(data=st.data())
def test_an_item_with_any_impossible_value_is_refused_naming_the_item(
    aggregator: Aggregator, stream: str, data: st.DataObject
) -> None:
    valid, mutation = STREAMS[stream]
    device = f"fuzz-{stream}"
    credential = _credential(aggregator, device)
    n = data.draw(st.integers(0, COUNT - 1), label="item")
    path, value = data.draw(mutation(), label="mutation")
    before = stored(aggregator, device)
    body = encode(device, stream, mutate(valid(), n, path, value))
    check_refused(aggregator, device, credential, stream, body, before, f"item {n + 1}")


HEADER_VALUES = st.one_of(NOT_A_NUMBER, st.integers(min_value=-(2**70), max_value=2**70), st.text(max_size=70))


@BUDGET
@given(field=st.sampled_from(["device", "stream", "first_seq", "last_seq", "count", "digest", "backlog",
                              "prev_seq", "store"]), value=HEADER_VALUES)
def test_a_header_with_any_wrong_field_is_refused(aggregator: Aggregator, field: str, value: Any) -> None:
    device, credential = "fuzz-header", _credential(aggregator, "fuzz-header")
    body = encode(device, "readings", valid_readings(), header={field: value})
    valid = json.loads(gzip.decompress(encode(device, "readings", valid_readings())).partition(b"\n")[0])
    before = stored(aggregator, device)
    if field == "store" and isinstance(value, str) and (value == "" or protocol.STORE_ID.match(value)):
        return  # a valid store identity: not a wrong field
    if field == "backlog" and isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= protocol.MAX_SEQ:
        return
    if value == valid.get(field) or (field == "prev_seq" and value in (0, None)):
        return
    check_refused(aggregator, device, credential, "readings", body, before, None)


@BUDGET
@given(data=st.data())
def test_a_damaged_body_is_refused(aggregator: Aggregator, data: st.DataObject) -> None:
    device, credential = "fuzz-body", _credential(aggregator, "fuzz-body")
    body = bytearray(encode(device, "readings", valid_readings()))
    damage = data.draw(st.sampled_from(["truncate", "flip", "append"]), label="damage")
    if damage == "truncate":
        body = body[:data.draw(st.integers(0, len(body) - 1), label="length")]
    elif damage == "flip":  # after gzip's fixed header (its time stamp is not checksummed)
        at = data.draw(st.integers(10, len(body) - 1), label="at")
        body[at] ^= data.draw(st.integers(1, 255), label="bits")
    else:
        body += data.draw(st.binary(min_size=1, max_size=64), label="tail")
    before = stored(aggregator, device)
    check_refused(aggregator, device, credential, "readings", bytes(body), before, None)


_CREDENTIALS: dict[tuple[str, str], str] = {}


def _credential(agg: Aggregator, device: str) -> str:
    """One registration per device and database (hypothesis calls the test many times)."""
    key = (agg.target, device)
    if key not in _CREDENTIALS:
        _CREDENTIALS[key] = agg.add_device(device)
    return _CREDENTIALS[key]
