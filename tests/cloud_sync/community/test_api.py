"""The operator API and the ``nattery-cloud community`` commands against a real aggregator
process and database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner

from cloud_sync.cli import main
from tests.cloud_sync.aggregator import Aggregator, aggregator, cloud_target, pg_url  # noqa: F401

T0 = 1_767_225_600


async def call(agg: Aggregator, credential: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
        method, agg.url + path, json=body, headers={"Authorization": f"Bearer {credential}"}
    ) as response:
        return response.status, await response.json()


async def test_an_operator_runs_a_community_over_the_api(aggregator: Aggregator) -> None:
    op = aggregator.add_operator(f"op-{uuid.uuid4().hex[:6]}")
    device_id, other_id = f"pi-{uuid.uuid4().hex[:6]}", f"pi-{uuid.uuid4().hex[:6]}"
    device, other = aggregator.add_device(device_id), aggregator.add_device(other_id)
    cid = f"api-{uuid.uuid4().hex[:6]}"
    status, body = await call(aggregator, op, "POST", "/v1/communities", {
        "id": cid, "name": "Lindenstraße", "rule": "uniform_price", "feed_in_ueur_kwh": 79_400,
        "grid_import_ueur_kwh": 320_000, "fee_ueur_kwh": 10_000})
    assert status == 200 and body["rule"] == "uniform_price"
    for member in ({"member": "DE0001", "role": "prosumer", "pv_wp": 9_000, "inverter_w": 8_000, "valid_from": T0,
                    "ask_ueur_kwh": 100_000},
                   {"member": "DE0002", "role": "consumer", "valid_from": T0, "bid_ueur_kwh": 250_000,
                    "device": device_id}):
        assert (await call(aggregator, op, "POST", f"/v1/communities/{cid}/members", member))[0] == 200
    status, body = await call(aggregator, op, "POST", f"/v1/communities/{cid}/positions", [
        {"member": "DE0001", "tick_start": T0, "import_wh": 0, "export_wh": 1_200},
        {"member": "DE0002", "tick_start": T0, "import_wh": 800, "export_wh": 0}])
    assert (status, body) == (200, {"received": 2, "changed": 2})
    status, body = await call(aggregator, op, "POST", f"/v1/communities/{cid}/match")
    assert status == 200 and [m["version"] for m in body["matched"]] == [1]
    status, body = await call(aggregator, op, "GET", f"/v1/communities/{cid}/trades?from={T0}&to={T0 + 900}")
    # one price: the middle of the marginal ask (10 ct) and bid (25 ct)
    assert body["trades"] == [{"tick_start": T0, "version": 1, "seq": 0, "seller": "DE0001", "buyer": "DE0002",
                               "wh": 800, "price_ueur_kwh": 175_000, "fee_ueur_kwh": 10_000}]
    status, body = await call(aggregator, op, "GET", f"/v1/communities/{cid}/balances")
    assert body["balances"][0] == {"member": "DE0001", "sold_wh": 800, "bought_wh": 0, "revenue_neur": 800 * 175_000,
                                   "cost_neur": 0, "fee_neur": 0, "saving_neur": 800 * (175_000 - 79_400)}
    status, body = await call(aggregator, op, "GET", f"/v1/communities/{cid}")
    assert [m["member"] for m in body["members"]] == ["DE0001", "DE0002"]
    # the member's device reads its own trades, summed up for its page; another device may not
    status, body = await call(aggregator, device, "GET", f"/v1/devices/{device_id}/community?from={T0}&to={T0 + 900}")
    assert (status, body) == (200, {"communities": [{
        "community": cid, "member": "DE0002", "sold_wh": 0, "bought_wh": 800, "buyers": 0, "sellers": 1,
        "revenue_neur": 0, "cost_neur": 800 * 185_000, "saving_neur": 800 * (320_000 - 175_000 - 10_000)}]})
    assert (await call(aggregator, other, "GET", f"/v1/devices/{device_id}/community?from={T0}&to={T0 + 900}"))[0] == 403
    status, body = await call(aggregator, device, "GET", f"/v1/devices/{device_id}/community?from=x&to=1")
    assert (status, body["error"]) == (400, "query from: got 'x', expected an integer (epoch seconds)")


async def test_the_api_refuses_devices_bad_input_and_unknown_communities(aggregator: Aggregator) -> None:
    op = aggregator.add_operator(f"op-{uuid.uuid4().hex[:6]}")
    device = aggregator.add_device(f"dev-{uuid.uuid4().hex[:6]}")
    assert (await call(aggregator, device, "GET", "/v1/communities"))[0] == 403
    status, body = await call(aggregator, op, "POST", "/v1/communities", {"id": "x", "rule": "fair",
                                                                          "feed_in_ueur_kwh": 1, "grid_import_ueur_kwh": 2})
    assert status == 400 and "rule: 'fair' is not allowed" in body["error"]
    status, body = await call(aggregator, op, "POST", "/v1/communities", {"id": "x", "rule": "greedy",
                                                                          "feed_in_ueur_kwh": "8 ct", "grid_import_ueur_kwh": 2})
    assert status == 400 and body["error"] == "body.feed_in_ueur_kwh: '8 ct' is not allowed (a int)"
    status, body = await call(aggregator, op, "POST", "/v1/communities/nowhere/match?grace_s=-1")
    assert (status, body["error"]) == (400, "query grace_s: got -1.0, allowed: 0 or more")
    status, body = await call(aggregator, op, "GET", "/v1/communities/nowhere/balances")
    assert status == 404 and "no community 'nowhere'" in body["error"]
    assert (await call(aggregator, op, "GET", "/v1/communities"))[0] == 200


def test_the_commands_run_a_community(cloud_target: str, tmp_path: Path) -> None:
    cid = f"cli-{uuid.uuid4().hex[:6]}"
    runner = CliRunner()

    def cloud(*args: str) -> str:
        result = runner.invoke(main, ["community", *args, "--db", cloud_target])
        assert result.exit_code == 0, result.output
        return result.output

    cloud("create", cid, "--rule", "greedy", "--feed-in-ct", "7.94", "--import-ct", "32", "--fee-ct", "1")
    cloud("join", cid, "DE0001", "--role", "prosumer", "--from", "2026-01-01T00:00", "--pv-kwp", "9.5",
          "--inverter-kw", "8", "--export-limit-kw", "2")
    cloud("join", cid, "DE0002", "--role", "consumer", "--from", "2026-01-01")
    csv_file = tmp_path / "positions.csv"
    csv_file.write_text(f"member,tick_start,import_wh,export_wh\nDE0001,{T0},0,900\nDE0002,{T0},700,0\n")
    assert "2 positions, 2 new or changed" in cloud("positions", cid, str(csv_file))
    assert "2 positions, 0 new or changed" in cloud("positions", cid, str(csv_file))
    matched = json.loads(cloud("match", cid))
    assert [(m["tick_start"], m["version"], m["shared_wh"]) for m in matched["matched"]] == [(T0, 1, 500)]  # 2 kW limit
    assert f"{cid}\tgreedy\tfeed_in=79400\timport=320000\tfee=10000" in cloud("list")
    balances = cloud("balances", cid).splitlines()
    # 500 Wh at the band's middle, (7.94 + 31) / 2 = 19.47 ct/kWh: 0.09735 EUR; the buyer pays 1 ct/kWh more
    assert balances[1:] == ["DE0001\t500\t0\t0.0974\t0.0000\t0.0000\t0.0576",
                            "DE0002\t0\t500\t0.0000\t0.1024\t0.0050\t0.0576"]
    bad = runner.invoke(main, ["community", "create", "y", "--rule", "greedy", "--feed-in-ct", "7.941234",
                               "--import-ct", "32", "--db", cloud_target])
    assert bad.exit_code == 2 and "at most 4 decimals of a cent" in bad.output
    unknown = runner.invoke(main, ["community", "match", "nowhere", "--db", cloud_target])
    assert unknown.exit_code == 1 and "no community 'nowhere'" in unknown.output
