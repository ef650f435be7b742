"""Hostile and clumsy uploads against a real aggregator: each is refused with a JSON error that
names the item and field, nothing is stored, and the operator's views keep answering."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

from cloud_sync import registry
from common import sync_protocol as protocol
from cloud_sync.app import create_app
from cloud_sync.db import connect
from cloud_sync.limits import FailureLimiter
from cloud_sync.schema import sync as schema
from tests.cloud_sync.aggregator import Aggregator, aggregator, batch_body, cloud_target, pg_url  # noqa: F401
from tests.cloud_sync.test_app import get, post, readings

BIG = 2**63


def raw_batch(device: str, stream: str, lines: list[bytes]) -> bytes:
    """A batch whose header matches its item lines, whatever they hold."""
    seqs = [int(re.match(rb'{"seq": (\d+)', line).group(1)) for line in lines]  # type: ignore[union-attr]
    header = {"device": device, "stream": stream, "first_seq": seqs[0], "last_seq": seqs[-1], "count": len(lines),
              "digest": hashlib.sha256(b"\n".join(lines)).hexdigest()}
    return gzip.compress(json.dumps(header).encode() + b"\n" + b"\n".join(lines))


def device(agg: Aggregator, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return name, agg.add_device(name)


async def request(agg: Aggregator, method: str, path: str, **kwargs: Any) -> tuple[int, str, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.request(method, agg.url + path, **kwargs) as r:
        return r.status, r.content_type, await r.json(content_type=None)


async def test_every_error_status_has_a_json_body(aggregator: Aggregator) -> None:
    status, kind, answer = await request(aggregator, "GET", "/no/such/path")
    assert (status, kind) == (404, "application/json")
    assert "/no/such/path" in answer["error"]
    status, kind, answer = await request(aggregator, "DELETE", "/v1/health")
    assert (status, kind) == (405, "application/json")
    assert "DELETE" in answer["error"] and "GET" in answer["error"]


async def test_an_unexpected_failure_answers_500_in_json(tmp_path: Path) -> None:
    app = create_app(str(tmp_path / "cloud.db"))

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/broken")
        assert (response.status, response.content_type) == (500, "application/json")
        assert await response.json() == {"error": "internal error; the aggregator's log has the details"}


async def test_an_upload_needs_the_batch_content_type(aggregator: Aggregator) -> None:
    name, cred = device(aggregator, "ctype")
    body = batch_body(name, "readings", readings(1, 3))
    status, _, answer = await request(
        aggregator, "POST", "/v1/ingest/readings", data=body,
        headers={"Authorization": f"Bearer {cred}", "Content-Type": "application/json"},
    )
    assert status == 415
    assert answer["error"] == f"Content-Type: got 'application/json', expected {protocol.CONTENT_TYPE!r}"
    assert aggregator.rows(name) == []


async def test_bytes_after_the_gzip_stream_are_refused(aggregator: Aggregator) -> None:
    name, cred = device(aggregator, "trail")
    status, answer = await post(aggregator, cred, "readings", batch_body(name, "readings", readings(1, 3)) + b"{}")
    assert (status, answer["error"]) == (400, "body: 2 bytes after the end of the gzip stream")
    lines = [json.dumps(item).encode() for item in readings(1, 3)]
    lines[2] += b" x"
    status, answer = await post(aggregator, cred, "readings", raw_batch(name, "readings", lines))
    assert status == 400
    assert answer["error"].startswith("item 3: not valid JSON (unexpected content after document")
    assert aggregator.rows(name) == []


@pytest.mark.parametrize(
    "header, field",
    [({"first_seq": BIG, "last_seq": BIG + 2}, "header.first_seq"), ({"backlog": BIG}, "header.backlog"),
     ({"prev_seq": BIG}, "header.prev_seq")],
    ids=["seq", "backlog", "prev"],
)
async def test_integers_beyond_64_bits_are_refused_with_422(
    aggregator: Aggregator, header: dict[str, Any], field: str
) -> None:
    name, cred = device(aggregator, "big")
    items = readings(1, 3)
    if "first_seq" in header:
        for n, item in enumerate(items):
            item["seq"] = header["first_seq"] + n
    status, answer = await post(aggregator, cred, "readings", batch_body(name, "readings", items, header=header))
    assert status == 422, answer
    assert answer["error"].startswith(f"{field}: got ")
    assert f"allowed: 0 to {protocol.MAX_SEQ}" in answer["error"] or f"allowed: 1 to {protocol.MAX_SEQ}" in answer["error"]
    assert aggregator.rows(name) == []
    assert (await get(aggregator, cred, "/v1/streams/readings"))[0] == 200


def _reading(ts: Any, data: Any = None) -> dict[str, Any]:
    return {"seq": 2, "ts": ts, "data": {"roles": {"soc_pct": 50.0}, "registers": {}} if data is None else data}


@pytest.mark.parametrize(
    "bad, message",
    [
        (_reading(time.time() + 400 * 86_400), "item 2.ts: got "),
        (_reading(-5.0), "item 2.ts: got -5.0, allowed: "),
        (_reading(time.time(), {"ts": "yesterday", "roles": {}, "registers": {}}),
         "item 2.data.ts: not allowed (the item's own ts is the reading's time)"),
        (_reading(time.time(), {"roles": {"soc_pct": 250.0}, "registers": {}}),
         "item 2.data.roles.soc_pct: got 250.0, allowed: 0 to 100"),
        (_reading(time.time(), {"roles": {"grid_w": [1]}, "registers": {}}),
         "item 2.data.roles.grid_w: got [1], expected a number, a string or null"),
        (_reading(time.time(), {"roles": {"grid_w": 1e300}, "registers": {}}),
         "item 2.data.roles.grid_w: got 1e+300, allowed: -1e+06 to 1e+06"),
    ],
    ids=["future", "negative", "own-ts", "soc", "list", "huge-power"],
)
async def test_readings_with_impossible_values_are_refused_and_the_fleet_list_survives(
    aggregator: Aggregator, bad: dict[str, Any], message: str
) -> None:
    name, cred = device(aggregator, "val")
    items = [readings(1, 1)[0], bad, {**readings(3, 3)[0]}]
    status, answer = await post(aggregator, cred, "readings", batch_body(name, "readings", items))
    assert status == 422, answer
    assert answer["error"].startswith(message), answer
    assert aggregator.rows(name) == []
    op = aggregator.add_operator(f"op-{name}")
    assert (await get(aggregator, op, "/v1/devices"))[0] == 200
    assert (await get(aggregator, cred, "/v1/streams/readings"))[0] == 200


@pytest.mark.parametrize(
    "data, message",
    [
        ({"ts": 1_795_000_000, "import_wh": "lots"}, "item 1.data.import_wh: got 'lots', expected a number"),
        ({"ts": 1_795_000_000, "import_wh": -3.0}, "item 1.data.import_wh: got -3.0, allowed: 0 to "),
        ({"ts": 10**12, "import_wh": 1.0}, "item 1.data.ts: got 1000000000000, allowed: "),
        ({"ts": "noon", "import_wh": 1.0}, "item 1.data.ts: got 'noon', expected epoch seconds"),
    ],
    ids=["text", "negative", "future", "ts-text"],
)
async def test_energy_slots_with_impossible_values_are_refused(
    aggregator: Aggregator, data: dict[str, Any], message: str
) -> None:
    name, cred = device(aggregator, "energy")
    status, answer = await post(aggregator, cred, "energy", batch_body(name, "energy", [{"seq": 1, "key": "1", "data": data}]))
    assert status == 422, answer
    assert answer["error"].startswith(message), answer
    assert aggregator.documents(name, "energy") == {}
    assert (await get(aggregator, cred, f"/v1/devices/{name}/energy/daily"))[0] == 200


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-1e400"])
async def test_non_finite_numbers_are_refused(aggregator: Aggregator, literal: bytes) -> None:
    name, cred = device(aggregator, "nan")
    line = b'{"seq": 1, "ts": %f, "data": {"roles": {"grid_w": %s}, "registers": {}}}' % (time.time(), literal)
    status, answer = await post(aggregator, cred, "readings", raw_batch(name, "readings", [line]))
    assert status == 400
    assert answer["error"].startswith("item 1: not valid JSON")
    assert aggregator.rows(name) == []


async def test_unknown_and_wrong_credentials_get_the_same_answer(aggregator: Aggregator) -> None:
    name, _ = device(aggregator, "known")
    body = batch_body(name, "readings", readings(1, 3))
    status, known = await post(aggregator, f"dev.{name}.wrong-secret", "readings", body)
    assert (status, known["error"]) == (401, f"credential not accepted for device {name!r}")
    status, unknown = await post(aggregator, "dev.ghost-device.wrong-secret", "readings", body)
    assert (status, unknown["error"]) == (401, "credential not accepted for device 'ghost-device'")


async def test_an_unknown_device_costs_the_same_password_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_verify = registry.verify_password

    def counting(secret: str, stored: str) -> bool:
        calls.append(secret)
        return real_verify(secret, stored)

    monkeypatch.setattr(registry, "verify_password", counting)
    db = await connect(str(tmp_path / "cloud.db"))
    try:
        credential = await registry.add(db, "dev", "real")
        auth = registry.Authenticator(db, FailureLimiter(100, 60))
        for header in ("Bearer dev.ghost.some-secret", "Bearer dev.real.some-secret"):
            with pytest.raises(registry.AuthError, match="credential not accepted for device") as refused:
                await auth.check(header, "10.0.0.9")
            assert refused.value.status == 401
        assert calls == ["some-secret", "some-secret"]
        assert await auth.check(f"Bearer {credential}", "10.0.0.9") == registry.Principal("dev", "real")
    finally:
        await db.close()


async def raw_post(agg: Aggregator, credential: str, stream: str, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {"Content-Type": protocol.CONTENT_TYPE, "Authorization": f"Bearer {credential}"}
    async with aiohttp.ClientSession() as s, s.post(f"{agg.url}/v1/ingest/{stream}", data=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.json()


async def test_failed_credentials_are_limited_per_source_and_name(tmp_path: Path) -> None:
    agg = Aggregator(str(tmp_path / "cloud.db"), tmp_path / "agg.log",
                     options=("--auth-failures", "3", "--auth-window-s", "600"))
    cred_a, cred_b = agg.add_device("limit-a"), agg.add_device("limit-b")
    agg.start()
    try:
        assert (await raw_post(agg, cred_a, "readings", batch_body("limit-a", "readings", readings(1, 3))))[0] == 200
        body = batch_body("limit-a", "readings", readings(4, 6))
        answers = await asyncio.gather(*(raw_post(agg, "dev.limit-a.guess", "readings", body) for _ in range(12)))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [401] * 3 + [429] * 9  # counted before the password check, so parallel ones too
        status, headers, answer = next(a for a in answers if a[0] == 429)
        assert 590 <= int(headers["Retry-After"]) <= 600
        assert answer["error"].startswith("too many failed credentials from this address or for device 'limit-a'")
        # A credential this instance has verified before still works; a new one from this address waits.
        assert (await raw_post(agg, cred_a, "readings", body))[0] == 200
        status, headers, _ = await raw_post(agg, cred_b, "readings", batch_body("limit-b", "readings", readings(1, 3)))
        assert status == 429 and "Retry-After" in headers
    finally:
        agg.stop()
    assert [seq for seq, _ in agg.rows("limit-a")] == [1, 2, 3, 4, 5, 6]
    assert agg.rows("limit-b") == []


async def test_decodes_are_bounded_and_a_stalled_body_times_out(tmp_path: Path) -> None:
    # A short body timeout, as the test waits all of it for the 408; the 503 below comes within
    # milliseconds of the stalled upload taking the slot, well inside it.
    agg = Aggregator(str(tmp_path / "cloud.db"), tmp_path / "agg.log",
                     options=("--decodes", "1", "--decode-wait-s", "0", "--body-timeout-s", "3"))
    cred = agg.add_device("gate")
    agg.start()
    try:
        # A body that stops arriving holds the only decode slot.
        reader, writer = await asyncio.open_connection("127.0.0.1", agg.port)
        writer.write(f"POST /v1/ingest/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {cred}\r\n"
                     f"Content-Type: {protocol.CONTENT_TYPE}\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10)
        await writer.drain()
        body = batch_body("gate", "readings", readings(1, 3))
        deadline = time.monotonic() + 30
        while (answer := await raw_post(agg, cred, "readings", body))[0] != 503:
            assert time.monotonic() < deadline, f"the stalled upload never held the slot: {answer}"
        _, headers, error = answer
        assert headers["Retry-After"] == "1"
        assert error["error"] == "busy decoding 1 other batches; retry after 1 s"
        # the whole answer, not up to EOF: the server then lingers 10 s more for the unread body
        stalled = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = re.search(r"(?im)^content-length: *(\d+)", stalled)
        assert length is not None, stalled
        stalled += (await reader.readexactly(int(length.group(1)))).decode()
        writer.close()
        assert stalled.startswith("HTTP/1.1 408")
        assert '{"error": "the batch body did not arrive within 3 s"}' in stalled
        assert (await raw_post(agg, cred, "readings", body))[0] == 200
    finally:
        agg.stop()
    assert [seq for seq, _ in agg.rows("gate")] == [1, 2, 3]


async def test_values_stored_before_the_checks_do_not_break_the_operators_views(aggregator: Aggregator) -> None:
    name, cred = device(aggregator, "legacy")
    op = aggregator.add_operator(f"op-{name}")
    future = 1e12  # the year 33,658, as an older release accepted it
    aggregator.execute(insert(schema.streams).values(
        device_id=name, stream="readings", store_id="", last_seq=1, last_ts=future, backlog=0, updated_at=time.time()))
    aggregator.execute(insert(schema.readings).values(
        device_id=name, stream="readings", store_id="", seq=1, ts=future,
        line=json.dumps({"seq": 1, "ts": future, "data": {"ts": "x", "roles": {}}})))
    slot = int(time.time()) // 900 * 900 - 900
    aggregator.execute(insert(schema.documents).values(
        device_id=name, stream="energy", key=str(slot), seq=1, ts=float(slot),
        data=json.dumps({"ts": slot, "import_wh": "lots", "pv_wh": 2.0})))
    status, listing = await get(aggregator, op, f"/v1/devices/{name}")
    assert status == 200, listing
    assert listing["latest_telemetry"]["time"] is None and listing["streams"]["readings"]["last_ts"] is None
    status, state = await get(aggregator, cred, "/v1/streams/readings")
    assert (status, state["last_ts"]) == (200, None)
    day = time.strftime("%Y-%m-%d", time.gmtime(slot))
    status, energy = await get(aggregator, op, f"/v1/devices/{name}/energy/daily?from={day}&to={day}")
    assert status == 200, energy
    assert (energy["days"][0]["import_wh"], energy["days"][0]["pv_wh"]) == (0.0, 2.0)
