"""``nattery-fleet`` in-process against a Balena API stand-in on 127.0.0.1 (the real ``balena-sdk``
makes the calls) and a real ``nattery-cloud serve`` on SQLite."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from cloud_sync.schema.operators import audit_log
from cloud_sync.schema.sync import devices

from common import sync_protocol as protocol
from fleet.cli import main
from tests.cloud_sync.aggregator import Aggregator, batch_body, sqlite_aggregator  # noqa: F401 — fixture
from tests.fleet.balena_standin import FLEET, RELEASE, SERVICES, BalenaStandIn, balena_device, serving

PI1 = "7f3a91c04be24c3f8a1d5e6b9c0d2e4f"
PI2 = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PI3 = "0c1d2e3f405162738495a6b7c8d9e0f1"


@pytest.fixture
def balena(monkeypatch: pytest.MonkeyPatch) -> Iterator[BalenaStandIn]:
    standin = BalenaStandIn(devices=[
        balena_device(101, PI1, "home-berlin-1", online=True),
        balena_device(102, PI2, "home-berlin-2", online=False),
        balena_device(103, PI3, "home-potsdam-1", online=True),
    ], tags=[
        {"id": 1, "tag_key": "region", "value": "berlin", "device": {"__id": 101}},
        {"id": 2, "tag_key": "region", "value": "berlin", "device": {"__id": 102}},
        {"id": 3, "tag_key": "region", "value": "brandenburg", "device": {"__id": 103}},
    ])
    with serving(standin):
        monkeypatch.setenv("BALENA_API_KEY", "test-api-key")
        monkeypatch.setenv("NATTERY_FLEET", FLEET["slug"])
        monkeypatch.setenv("NATTERY_FLEET_BALENA_API", standin.url)
        yield standin


def fleet(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_config_set_on_a_device_sends_the_checked_variable(balena: BalenaStandIn) -> None:
    result = fleet("config", "set", "inverter.poll_interval_s", "2", "--device", PI1)
    assert result.exit_code == 0, result.output
    assert balena.device_vars == {(101, "NATTERY_INVERTER_POLL_INTERVAL_S"): "2"}


def test_a_wrong_value_is_refused_with_the_devices_message_and_nothing_is_sent(balena: BalenaStandIn) -> None:
    result = fleet("config", "set", "NATTERY_INVERTER_POLL_INTERVAL_S", "0.01", "--tag", "region=berlin")
    assert result.exit_code == 1
    assert "inverter.poll_interval_s: got 0.01, allowed: 0.2 to 3600" in result.output
    unknown = fleet("config", "set", "inverter.poll_every", "2", "--fleet")
    assert unknown.exit_code == 1 and "inverter.poll_every: unknown setting; allowed:" in unknown.output
    assert balena.requests == []


def test_config_set_on_a_tag_reaches_every_tagged_device_and_no_other(balena: BalenaStandIn) -> None:
    result = fleet("config", "set", "planner.mode", "self_consumption", "--tag", "region=berlin")
    assert result.exit_code == 0, result.output
    assert balena.device_vars == {(101, "NATTERY_PLANNER_MODE"): "self_consumption",
                                  (102, "NATTERY_PLANNER_MODE"): "self_consumption"}
    missing = fleet("config", "set", "planner.mode", "auto", "--tag", "region=hamburg")
    assert missing.exit_code == 1 and "no device of acme/nattery has tag region=hamburg" in missing.output
    assert len(balena.device_vars) == 2


def test_config_set_on_the_fleet_is_a_fleet_variable(balena: BalenaStandIn) -> None:
    assert fleet("config", "set", "log.level", "debug", "--fleet").exit_code == 0
    assert balena.fleet_vars == {"NATTERY_LOG_LEVEL": "debug"} and balena.device_vars == {}
    both = fleet("config", "set", "log.level", "debug", "--fleet", "--device", PI1)
    assert both.exit_code == 2 and "exactly one of --device, --tag and --fleet" in both.output


def test_pin_identify_and_restart(balena: BalenaStandIn) -> None:
    assert fleet("pin", RELEASE["commit"], "--device", PI2).exit_code == 0
    assert balena.device(PI2)["is_pinned_on__release"] == {"__id": RELEASE["id"]}
    assert fleet("pin", RELEASE["commit"]).exit_code == 0
    assert balena.fleet_release == RELEASE["id"]
    unknown = fleet("pin", "0" * 32)
    assert unknown.exit_code == 1 and "balena:" in unknown.output
    assert fleet("identify", PI3).exit_code == 0 and balena.blinks == [PI3]
    assert fleet("restart", PI1, "bridge").exit_code == 0
    assert balena.restarts == [(101, SERVICES["bridge"])]


def test_an_unknown_device_is_a_one_line_error(balena: BalenaStandIn) -> None:
    result = fleet("identify", "f" * 32)
    last = result.output.splitlines()[-1]
    assert result.exit_code == 1 and last.startswith("Error: balena:") and "f" * 32 in last


def upload_reading(agg: Aggregator, credential: str, device: str, soc: float) -> None:
    body = batch_body(device, "readings", [{"seq": 1, "ts": time.time() - 5,
                                             "data": {"roles": {"soc_pct": soc}, "registers": {}}}])
    request = urllib.request.Request(f"{agg.url}/v1/ingest/readings", data=body, method="POST", headers={
        "Authorization": f"Bearer {credential}", "Content-Type": protocol.CONTENT_TYPE})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_provision_then_list_joins_balena_and_the_aggregator(
    balena: BalenaStandIn, sqlite_aggregator: Aggregator
) -> None:
    agg = sqlite_aggregator
    result = fleet("provision", "--db", agg.target, PI1, "fleet-home-1")
    assert result.exit_code == 0, result.output
    credential = balena.device_vars[(101, "NATTERY_CLOUD_CREDENTIAL")]
    assert credential.startswith("dev.fleet-home-1.") and credential not in result.output
    assert balena.device_vars[(101, "NATTERY_DEVICE_ID")] == "fleet-home-1"
    assert balena.device(PI1)["device_name"] == "fleet-home-1"
    upload_reading(agg, credential, "fleet-home-1", 63.5)

    again = fleet("provision", "--db", agg.target, PI2, "fleet-home-1")  # the name is taken
    assert again.exit_code == 1 and "already exists" in again.output
    assert (102, "NATTERY_CLOUD_CREDENTIAL") not in balena.device_vars
    writes = len(balena.writes)
    unknown = fleet("provision", "--db", agg.target, "e" * 32, "fleet-home-9")
    assert unknown.exit_code == 1 and len(balena.writes) == writes
    assert "fleet-home-9" not in [row["id"] for row in devices_at(agg)]

    listing = fleet("list", "--cloud", agg.url, "--cloud-credential", agg.add_operator("fleet-op"))
    assert listing.exit_code == 0, listing.output
    rows = {line.split("\t")[0]: line.split("\t") for line in listing.output.splitlines()}
    assert rows["device"] == ["device", "balena", "cloud", "sync_lag_s", "last_telemetry", "soc_pct",
                              "saved_month_eur", "alerts"]
    _, in_balena, at_cloud, lag, last, soc, saved, alerts = rows["fleet-home-1"]
    assert (in_balena, at_cloud, soc, saved, alerts) == ("online", "online", "63.5", "-", "-")
    assert float(lag) < 600 and last.endswith("Z")
    assert rows["home-berlin-2"][1:3] == ["offline", "not registered"]


def test_a_credential_that_cannot_be_stored_is_revoked(
    balena: BalenaStandIn, sqlite_aggregator: Aggregator
) -> None:
    balena.refuse_variables = True
    result = CliRunner().invoke(main, ["provision", "--db", sqlite_aggregator.target, PI3, "fleet-home-3"])
    assert result.exit_code == 1
    assert "fleet-home-3: its credential could not be stored" in result.output and "balena:" in result.output
    (row,) = [d for d in devices_at(sqlite_aggregator) if d["id"] == "fleet-home-3"]
    assert row["revoked"] is True
    assert balena.device(PI3)["device_name"] == "home-potsdam-1"  # not renamed


def devices_at(agg: Aggregator) -> list[dict[str, Any]]:
    op = agg.add_operator(f"peek-{time.monotonic_ns()}")
    request = urllib.request.Request(f"{agg.url}/v1/devices", headers={"Authorization": f"Bearer {op}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        devices: list[dict[str, Any]] = json.loads(response.read())["devices"]
    return devices


def test_list_shows_savings_this_month_and_open_alerts(balena: BalenaStandIn, sqlite_aggregator: Aggregator) -> None:
    agg = sqlite_aggregator
    credential = agg.add_device("home-potsdam-1")
    now = time.time()
    slot = int(now // 900) * 900 - 900
    body = batch_body("home-potsdam-1", "settlements", [{"seq": 1, "key": str(slot), "data": {
        "ts": slot, "import_wh": 100.0, "export_wh": 0.0, "cost_eur": 0.25, "revenue_eur": 0.05,
        "cost_no_battery_eur": 0.45}}])
    request = urllib.request.Request(f"{agg.url}/v1/ingest/settlements", data=body, method="POST", headers={
        "Authorization": f"Bearer {credential}", "Content-Type": protocol.CONTENT_TYPE})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    # as if that upload had been two hours ago, its last
    agg.execute(update(devices).where(devices.c.id == "home-potsdam-1").values(created_at=now - 7200, last_seen=now - 7200))
    listing = fleet("list", "--cloud", agg.url, "--cloud-credential", agg.add_operator("list-op"))
    assert listing.exit_code == 0, listing.output
    row = {line.split("\t")[0]: line.split("\t") for line in listing.output.splitlines()}["home-potsdam-1"]
    assert row[6:] == ["0.25", "device_silent"]  # 0.45 − (0.25 − 0.05); silent for 2 h


def test_actions_are_recorded_in_the_aggregators_audit_log(balena: BalenaStandIn,
                                                           sqlite_aggregator: Aggregator) -> None:
    agg = sqlite_aggregator
    cloud = ["--cloud", agg.url, "--cloud-credential", agg.add_operator("audit-op")]
    assert fleet("config", "set", "inverter.poll_interval_s", "2", "--device", PI1, *cloud).exit_code == 0
    assert fleet("identify", "f" * 32, *cloud).exit_code == 1  # no such device
    unrecorded = fleet("identify", PI3)
    assert unrecorded.exit_code == 0 and "identify device " + PI3 + ": not recorded" in unrecorded.output
    rows = [r for r in audit_of(agg) if r[0] == "op:audit-op"]
    assert rows[0] == ("op:audit-op", "config_set", f"device {PI1}", "ok", '{"NATTERY_INVERTER_POLL_INTERVAL_S": "2"}')
    assert rows[1][1:3] == ("identify", "device " + "f" * 32) and rows[1][3].startswith("failed: balena:")
    assert len(rows) == 2


def audit_of(agg: Aggregator) -> list[tuple[str, ...]]:
    from tests.cloud_sync.aggregator import _fetch, run

    a = audit_log.c
    return [tuple(r) for r in run(_fetch(agg.target, select(a.actor, a.action, a.target, a.outcome, a.detail)
                                                     .order_by(a.id)))]
