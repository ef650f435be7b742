"""The balance API against a real ``nattery-cloud serve`` (SQLite and PostgreSQL), and the
``nattery-cloud balance`` commands in-process: the operator's workflow end to end, refusals."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.parquet as pq
from click.testing import CliRunner

from cloud_sync.balance.timegrid import day_bounds
from cloud_sync.cli import main
from common.market_ids import bdew_check_digit
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url  # noqa: F401

BRP = "990000000777" + str(bdew_check_digit("990000000777"))
MELO = "DE0001234567890000000000000777001"


async def call(agg: Aggregator, credential: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.request(
            method, agg.url + path, headers={"Authorization": f"Bearer {credential}"}, **kwargs) as r:
        body = await r.read()
        kind = r.headers.get("Content-Type", "")
        return r.status, (await r.json() if "json" in kind else body)


def price_csv(day: datetime) -> str:
    start, end = day_bounds(day.date())
    return "timestamp,price\n" + "".join(f"{datetime.fromtimestamp(t, UTC):%Y-%m-%dT%H:%M:%SZ},42.5\n"
                                         for t in range(start, end, 3600))


async def test_the_workflow_over_http_with_its_refusals(aggregator: Aggregator) -> None:
    op = aggregator.add_operator("balance-ops")
    dev = aggregator.add_device("balance-dev")
    assert (await call(aggregator, dev, "GET", "/v1/balance/groups"))[0] == 403
    assert (await call(aggregator, op, "POST", "/v1/balance/participants",
                       json={"id": BRP, "name": "BRP", "roles": ["brp"]}))[0] == 200
    status, body = await call(aggregator, op, "POST", "/v1/balance/participants",
                              json={"id": BRP[:-1] + "0", "name": "BRP", "roles": ["brp"]})
    assert status == 400 and "check digit" in body["error"]
    assert (await call(aggregator, op, "POST", "/v1/balance/groups", json={"id": "HTTP-1", "brp": BRP}))[0] == 200
    status, body = await call(aggregator, op, "POST", "/v1/balance/locations",
                              json={"melo": MELO, "device": "balance-dev", "connection_limit_w": 11000})
    assert status == 200 and body["device"] == "balance-dev"
    status, body = await call(aggregator, op, "POST", "/v1/balance/groups/HTTP-1/members",
                              json={"melo": MELO, "start": "2026-06-17T10:15"})
    assert (status, body["start"]) == (200, "2026-06-17T10:15:00+02:00")
    for payload, expected in (
        ({"melo": MELO, "start": "2026-06-18T00:00"}, (409, "would be in two groups at once")),
        ({"melo": MELO, "start": "2026-03-29T02:30"}, (400, "does not exist in Europe/Berlin")),
        ({"melo": MELO}, (400, "start: got None, expected a string")),
        ({"melo": "DE0001234567890000000000000777999", "start": "2026-06-18T00:00"},
         (404, "is not a registered metering location")),
    ):
        status, body = await call(aggregator, op, "POST", "/v1/balance/groups/HTTP-1/members", json=payload)
        assert (status, expected[1] in body["error"]) == (expected[0], True), body
    status, body = await call(aggregator, op, "POST", "/v1/balance/groups/NOPE/members",
                              json={"melo": MELO, "start": "2026-06-18T00:00"})
    assert status == 404
    day = datetime(2026, 6, 18)
    status, body = await call(aggregator, op, "POST", "/v1/balance/prices?name=reBAP-http", data=price_csv(day))
    assert (status, body["rows"], body["resolution_min"]) == (200, 24, 60)
    status, body = await call(aggregator, op, "POST", "/v1/balance/prices?name=x", data="timestamp,price\nx,1\n")
    assert status == 400 and "row 2: timestamp 'x' is not ISO-8601" in body["error"]
    run_body = {"start": "2026-06-18T00:00", "end": "2026-06-19T00:00", "prices": "reBAP-http"}
    status, run = await call(aggregator, op, "POST", "/v1/balance/groups/HTTP-1/runs", json=run_body)
    assert (status, run["version"], run["members"], run["slots"], run["unchanged"]) == (200, 1, 1, 96, False)
    status, again = await call(aggregator, op, "POST", "/v1/balance/groups/HTTP-1/runs", json=run_body)
    assert (again["run"], again["unchanged"]) == (run["run"], True)
    status, csv_body = await call(aggregator, op, "GET", f"/v1/balance/runs/{run['run']}/report?by=member&format=csv")
    assert status == 200 and csv_body.decode().startswith("melo,schedule_kwh,actual_kwh,deviation_kwh,cost_eur")
    status, parquet = await call(aggregator, op, "GET", f"/v1/balance/runs/{run['run']}/report?format=parquet")
    assert status == 200 and pq.read_table(io.BytesIO(parquet)).num_rows == 96
    status, body = await call(aggregator, op, "GET", f"/v1/balance/runs/{run['run']}/report?format=xlsx")
    assert status == 400 and "format: got 'xlsx', allowed: json, csv, parquet" in body["error"]
    assert (await call(aggregator, op, "GET", "/v1/balance/runs/99999"))[0] == 404
    status, body = await call(aggregator, op, "GET", "/v1/balance/groups/HTTP-1/schedule?day=2026-06-18")
    assert status == 200 and len(body) == 96 and body[0]["members"] == 1
    for query, error in (("", "day: missing, expected a date (YYYY-MM-DD)"),
                         ("?day=18.06.2026", "day: got '18.06.2026', expected YYYY-MM-DD")):
        status, body = await call(aggregator, op, "GET", "/v1/balance/groups/HTTP-1/schedule" + query)
        assert (status, body["error"]) == (400, error)
    status, body = await call(aggregator, op, "POST", "/v1/balance/groups/HTTP-1/members/" + MELO + "/end",
                              json={"end": "2026-06-18T23:45"})
    assert (status, body["end"]) == (200, "2026-06-18T23:45:00+02:00")


def test_the_commands_run_the_same_library(tmp_path: Path) -> None:
    db = str(tmp_path / "cloud.db")
    runner = CliRunner()

    def ok(*args: str) -> str:
        result = runner.invoke(main, ["balance", *args, "--db", db])
        assert result.exit_code == 0, result.output
        return result.output

    ok("participant", "add", BRP, "--name", "BRP", "--role", "brp")
    ok("group", "add", "CLI-1", "--brp", BRP)
    ok("location", "add", MELO, "--limit-w", "11000")
    ok("join", "CLI-1", MELO, "--start", "2026-06-17T10:15")
    refused = runner.invoke(main, ["balance", "join", "CLI-1", MELO, "--start", "2026-06-17T12:00", "--db", db])
    assert refused.exit_code == 1 and "would be in two groups at once" in refused.output
    prices = tmp_path / "rebap.csv"
    prices.write_text(price_csv(datetime(2026, 6, 18)))
    ok("prices", str(prices), "--name", "reBAP")
    assert '"version": 1' in ok("settle", "CLI-1", "--from", "2026-06-18T00:00", "--to", "2026-06-19T00:00")
    report = ok("report", "1", "--by", "slot")
    assert report.splitlines()[1].startswith("2026-06-18T00:00:00+02:00,0,0,0,42.5,0,1,0,1")  # no actual: settled as scheduled
    ok("report", "1", "--format", "parquet", "--out", str(tmp_path / "r.parquet"))
    assert pq.read_table(tmp_path / "r.parquet").num_rows == 96
    assert "2026-06-17T10:15:00+02:00" in ok("members", "CLI-1")
