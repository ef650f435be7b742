"""The aggregator's HTTP API against a real ``nattery-cloud serve`` (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common import sync_protocol as protocol
from tests.cloud_sync.aggregator import Aggregator, aggregator, batch_body, cloud_target, pg_url  # noqa: F401
from tools.bench.cloud_abuse import bombs

NOW = time.time()


def readings(first: int, last: int, value: float = 1.0) -> list[dict[str, Any]]:
    return [
        {"seq": s, "ts": NOW - 1000 + s, "data": {"roles": {"soc_pct": 50.0, "grid_w": value * s}, "registers": {}}}
        for s in range(first, last + 1)
    ]


def reheader(body: bytes, **fields: Any) -> bytes:
    head, _, rest = gzip.decompress(body).partition(b"\n")
    return gzip.compress(json.dumps({**json.loads(head), **fields}).encode() + b"\n" + rest)


async def post(agg: Aggregator, credential: str | None, stream: str, body: bytes) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": protocol.CONTENT_TYPE}
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    async with aiohttp.ClientSession() as s, s.post(f"{agg.url}/v1/ingest/{stream}", data=body, headers=headers) as r:
        return r.status, await r.json()


async def get(agg: Aggregator, credential: str | None, path: str) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    async with aiohttp.ClientSession() as s, s.get(agg.url + path, headers=headers) as r:
        return r.status, await r.json()


async def test_exact_retry_is_acknowledged_and_stored_once(aggregator: Aggregator) -> None:
    cred = aggregator.add_device("dev1-a")
    body = batch_body("dev1-a", "readings", readings(1, 100))
    assert await post(aggregator, cred, "readings", body) == (200, {"status": "stored", "last_seq": 100})
    assert await post(aggregator, cred, "readings", body) == (200, {"status": "duplicate", "last_seq": 100})
    # An older batch retried after newer ones were stored is still recognised.
    assert (await post(aggregator, cred, "readings", batch_body("dev1-a", "readings", readings(101, 150))))[0] == 200
    assert await post(aggregator, cred, "readings", body) == (200, {"status": "duplicate", "last_seq": 150})
    assert [seq for seq, _ in aggregator.rows("dev1-a")] == list(range(1, 151))


async def test_overlapping_different_batch_is_refused_and_changes_nothing(aggregator: Aggregator) -> None:
    cred = aggregator.add_device("dev2-a")
    await post(aggregator, cred, "readings", batch_body("dev2-a", "readings", readings(1, 100)))
    before = aggregator.rows("dev2-a")
    status, answer = await post(aggregator, cred, "readings", batch_body("dev2-a", "readings", readings(1, 100, 2.0)))
    assert status == 409
    assert answer["last_seq"] == 100
    assert "overlaps stored data up to 100 with different content; resume after 100" in answer["error"]
    status, answer = await post(aggregator, cred, "readings", batch_body("dev2-a", "readings", readings(50, 120)))
    assert status == 409
    assert aggregator.rows("dev2-a") == before
    assert "batch_overlaps" in aggregator.log()


@pytest.mark.parametrize(
    "mutate, status, message",
    [
        (lambda b: b[:-20], 400, "body is not valid gzip"),
        (lambda b: b"not gzip at all", 400, "body is not valid gzip"),
        (lambda b: gzip.compress(gzip.decompress(b).replace(b'"grid_w"', b'"grid_x"')), 400, "digest mismatch"),
        (lambda b: gzip.compress(b"{}\n{}"), 400, "header.device: got None, expected a string"),
        (lambda b: reheader(b, count=2), 400, "header.count is 2 but the batch has more item lines"),
        (lambda b: reheader(b, stream="weather"), 400, "header.stream: got 'weather', allowed: readings,"),
        (lambda b: reheader(b, first_seq=0), 422, "sequence range 0..3 is out of order"),
        (lambda b: reheader(b, prev_seq=1), 422, "sequence range 1..3 after 1 is out of order"),
    ],
    ids=["truncated", "not-gzip", "tampered", "no-header", "count", "stream", "range", "prev"],
)
async def test_corrupt_batches_are_refused_with_the_reason(
    aggregator: Aggregator, mutate: Any, status: int, message: str
) -> None:
    device = f"dev3-{uuid.uuid4().hex[:8]}"
    cred = aggregator.add_device(device)
    code, answer = await post(aggregator, cred, "readings", mutate(batch_body(device, "readings", readings(1, 3))))
    assert (code, message in answer["error"]) == (status, True), answer
    assert aggregator.rows(device) == []


@pytest.fixture(scope="module")
def inflating() -> dict[str, bytes]:
    """The bodies that inflate past the caps, made once for both backends (compressing them takes
    about 1.5 s of CPU): :func:`bombs`, and a first line that never ends."""
    return {**bombs("dev4-a"), "endless_first_line": gzip.compress(b"{" + b" " * (protocol.MAX_RAW_BYTES + 10) + b"}")}


async def test_out_of_order_and_oversized_batches_are_refused(aggregator: Aggregator,
                                                              inflating: dict[str, bytes]) -> None:
    cred = aggregator.add_device("dev4-a")
    shuffled = readings(1, 3)
    shuffled[1], shuffled[2] = shuffled[2], shuffled[1]
    body = batch_body("dev4-a", "readings", shuffled, header={"first_seq": 1, "last_seq": 2})
    status, answer = await post(aggregator, cred, "readings", body)
    assert status == 422
    assert "item 3: seq 2 is out of order (after 3)" in answer["error"]
    status, answer = await post(aggregator, cred, "readings", b"\0" * (protocol.MAX_BODY_BYTES + 1))
    assert status == 413
    assert "limit" in answer["error"]
    status, answer = await post(aggregator, cred, "readings", inflating["endless_first_line"])
    assert (status, answer["error"]) == (413, f"line 1 is longer than {protocol.MAX_LINE_BYTES} bytes")
    status, answer = await post(aggregator, cred, "readings", inflating["junk_lines"])
    assert (status, answer["error"][:22]) == (400, "item 1: not valid JSON")  # refused at the first line
    status, answer = await post(aggregator, cred, "readings", inflating["valid_items"])
    assert (status, answer["error"]) == (413, f"batch decompresses to more than {protocol.MAX_RAW_BYTES} bytes")
    assert aggregator.rows("dev4-a") == []


async def test_authentication_and_device_isolation(aggregator: Aggregator) -> None:
    cred_a, cred_b = aggregator.add_device("dev5-a"), aggregator.add_device("dev5-b")
    body_b = batch_body("dev5-b", "readings", readings(1, 5))
    assert (await post(aggregator, None, "readings", body_b))[0] == 401
    assert (await post(aggregator, "dev.dev5-b.wrong", "readings", body_b))[0] == 401
    status, answer = await post(aggregator, cred_a, "readings", body_b)
    assert (status, answer["error"]) == (403, "device 'dev5-a' may not write data of device 'dev5-b'")
    assert aggregator.rows("dev5-b") == []
    assert (await post(aggregator, cred_b, "readings", body_b))[0] == 200
    status, answer = await get(aggregator, cred_a, "/v1/devices/dev5-b/readings")
    assert (status, answer["error"]) == (403, "device 'dev5-a' may not read data of device 'dev5-b'")
    assert (await get(aggregator, cred_a, "/v1/devices"))[0] == 403
    status, own = await get(aggregator, cred_b, "/v1/devices/dev5-b/readings?after=3")
    assert status == 200
    assert [i["seq"] for i in own["items"]] == [4, 5]


async def test_revoked_device_is_refused(aggregator: Aggregator) -> None:
    cred = aggregator.add_device("dev6-a")
    assert (await post(aggregator, cred, "readings", batch_body("dev6-a", "readings", readings(1, 5))))[0] == 200
    aggregator.revoke_device("dev6-a")
    status, answer = await post(aggregator, cred, "readings", batch_body("dev6-a", "readings", readings(6, 9)))
    assert (status, answer["error"]) == (403, "device 'dev6-a' is revoked")
    assert len(aggregator.rows("dev6-a")) == 5


async def test_operator_sees_devices_telemetry_and_daily_energy(aggregator: Aggregator) -> None:
    cred = aggregator.add_device("dev7-a")
    aggregator.add_device("dev7-idle")
    op = aggregator.add_operator("ops7")
    await post(aggregator, cred, "readings", batch_body("dev7-a", "readings", readings(1, 10)))
    day = 1_795_000_000 // 86_400 * 86_400
    slots = [
        {"seq": n + 1, "key": str(day + n * 900),
         "data": {"ts": day + n * 900, "import_wh": 100.0, "pv_wh": 50.0, "complete": int(n != 3)}}
        for n in range(4)
    ]
    slots.append({"seq": 5, "key": str(day), "data": {"ts": day, "import_wh": 150.0, "pv_wh": 50.0, "complete": 1}})
    assert (await post(aggregator, cred, "energy", batch_body("dev7-a", "energy", slots)))[0] == 200

    asked = time.time()
    status, listing = await get(aggregator, op, "/v1/devices")
    answered = time.time()
    assert status == 200
    devices = {d["id"]: d for d in listing["devices"]}
    assert devices["dev7-a"]["online"] is True
    assert devices["dev7-idle"]["online"] is False
    assert devices["dev7-a"]["latest_telemetry"]["roles"] == {"soc_pct": 50.0, "grid_w": 10.0}
    assert devices["dev7-a"]["streams"]["readings"]["last_seq"] == 10
    newest = NOW - 1000 + 10  # reading 10: the lag is its age when the aggregator answered
    assert asked - newest - 0.05 <= devices["dev7-a"]["sync_lag_s"] <= answered - newest + 0.05

    date = time.strftime("%Y-%m-%d", time.gmtime(day))
    status, energy = await get(aggregator, op, f"/v1/devices/dev7-a/energy/daily?from={date}&to={date}")
    assert status == 200
    assert energy["days"] == [{
        "day": date, "import_wh": 450.0, "export_wh": 0.0, "charge_wh": 0.0, "discharge_wh": 0.0,
        "pv_wh": 200.0, "load_wh": 0.0, "slots": 4, "complete_slots": 3,
    }]
    status, answer = await get(aggregator, op, "/v1/devices/dev7-a/energy/daily?from=yesterday")
    assert (status, answer["error"]) == (400, "from: got 'yesterday', expected YYYY-MM-DD")
    status, answer = await get(aggregator, op, "/v1/devices/nobody")
    assert (status, answer["error"]) == (404, "device 'nobody' is not registered")


async def test_stream_position_and_health(aggregator: Aggregator) -> None:
    cred = aggregator.add_device("dev8-a")
    assert (await get(aggregator, None, "/v1/health"))[1]["ok"] is True
    await post(aggregator, cred, "readings", batch_body("dev8-a", "readings", readings(1, 7)))
    status, state = await get(aggregator, cred, "/v1/streams/readings")
    assert (status, state["last_seq"]) == (200, 7)
    status, answer = await get(aggregator, cred, "/v1/streams/bogus")
    assert status == 404
    assert "allowed: readings, readings_1min, energy, settlements, edi" in answer["error"]


def waits_logged(agg: Aggregator, device: str) -> int:
    """How often the aggregator logged an upload of ``device`` waiting for its predecessor."""
    return sum(1 for line in agg.log().splitlines()
               if '"upload_waits_for_predecessor"' in line and f'"device": "{device}"' in line)


async def test_pipelined_batches_are_stored_in_order(aggregator: Aggregator) -> None:
    cred = aggregator.add_device("dev9-a")

    def chained(first: int, last: int, prev: int) -> bytes:
        return batch_body("dev9-a", "readings", readings(first, last), header={"prev_seq": prev})

    assert (await post(aggregator, cred, "readings", chained(1, 10, 0)))[0] == 200
    status, answer = await post(aggregator, cred, "readings", chained(21, 30, 20))  # its predecessor never comes
    assert (status, answer["last_seq"]) == (425, 10)
    assert "batch follows 20 but only 10 is stored yet; send the batch before it first" in answer["error"]
    waits = waits_logged(aggregator, "dev9-a")
    later = asyncio.create_task(post(aggregator, cred, "readings", chained(21, 30, 20)))
    async with asyncio.timeout(10):  # it arrived first and waits for the one before it
        while waits_logged(aggregator, "dev9-a") == waits:
            await asyncio.sleep(0.02)  # real time: watching the server's log, not standing in for it
    assert not later.done()
    assert (await post(aggregator, cred, "readings", chained(11, 20, 10)))[0] == 200
    assert (await later)[0] == 200
    status, answer = await post(aggregator, cred, "readings", chained(31, 40, 25))
    assert (status, answer["last_seq"]) == (409, 30)
    assert [seq for seq, _ in aggregator.rows("dev9-a")] == list(range(1, 31))


async def test_two_instances_share_one_database(aggregator: Aggregator, tmp_path: Path) -> None:
    other = Aggregator(aggregator.target, tmp_path / "second.log")
    other.start()
    try:
        cred = aggregator.add_device("dev10-a")
        first = batch_body("dev10-a", "readings", readings(1, 50))
        second = batch_body("dev10-a", "readings", readings(51, 80))
        assert (await post(aggregator, cred, "readings", first))[0] == 200
        assert (await post(other, cred, "readings", second))[0] == 200
        assert await post(other, cred, "readings", first) == (200, {"status": "duplicate", "last_seq": 80})
        status, answer = await post(aggregator, cred, "readings", batch_body("dev10-a", "readings", readings(70, 90)))
        assert (status, answer["last_seq"]) == (409, 80)
        aggregator.revoke_device("dev10-a")
        assert (await post(other, cred, "readings", batch_body("dev10-a", "readings", readings(81, 85))))[0] == 403
    finally:
        other.stop()
    assert [seq for seq, _ in aggregator.rows("dev10-a")] == list(range(1, 81))
