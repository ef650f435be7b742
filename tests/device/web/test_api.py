"""The JSON API over real HTTP: access, CSRF, first login, roles, validation, control, events."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from device.store import Store
from device.web.api import setup as api_setup
from device.web.keys import SESSIONS
from device.web.openapi import PATHS
from tests.device.web.conftest import api, csrf, login
from tests.device.web.harness import WebStack


async def test_anonymous_is_sent_to_login(client: TestClient) -> None:
    response = await client.get("/api/v1/overview")
    assert response.status == 401
    assert "login required" in (await response.json())["error"]
    page = await client.get("/", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login?next=/"


async def test_session_cookie_is_httponly_and_strict(client: TestClient) -> None:
    response = await client.get("/api/v1/session")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


async def test_state_changes_need_the_csrf_token(client: TestClient) -> None:
    await client.get("/api/v1/session")
    response = await client.post("/api/v1/login", json={"account": "homeowner", "password": "nattery"})
    assert response.status == 403
    assert "CSRF" in (await response.json())["error"]
    wrong = await client.post("/api/v1/login", json={"account": "homeowner", "password": "nattery"},
                              headers={"X-CSRF-Token": "forged"})
    assert wrong.status == 403
    form = await client.post("/login", data={"account": "homeowner", "password": "nattery"})
    assert form.status == 403


async def test_first_login_forces_a_password_change(client: TestClient) -> None:
    before = (await client.get("/api/v1/session")).cookies
    data = await login(client, "homeowner")
    assert data == {**data, "role": "homeowner", "must_change": True}
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))["nattery_session"].value != before.get(
        "nattery_session", "")
    status, body = await api(client, "GET", "/api/v1/overview")
    assert status == 403 and "password change required" in body["error"]
    status, body = await api(client, "POST", "/api/v1/password", {
        "old_password": "nattery", "new_password": "short", "repeat_password": "short"})
    assert (status, body["field"]) == (400, "new_password")
    status, body = await api(client, "POST", "/api/v1/password", {
        "old_password": "nattery", "new_password": "installer", "repeat_password": "installer"})
    assert status == 400 and "default" in body["error"]
    status, body = await api(client, "POST", "/api/v1/password", {
        "old_password": "wrong", "new_password": "long-enough-1", "repeat_password": "long-enough-1"})
    assert (status, body["field"]) == (400, "old_password")
    status, _ = await api(client, "POST", "/api/v1/password", {
        "old_password": "nattery", "new_password": "long-enough-1", "repeat_password": "long-enough-1"})
    assert status == 200
    status, body = await api(client, "GET", "/api/v1/overview")
    assert status == 200 and body["online"] is True
    # the old password is gone, the new one works, and nothing forces a change any more
    await api(client, "POST", "/api/v1/logout")
    status, body = await api(client, "POST", "/api/v1/login", {"account": "homeowner", "password": "nattery"})
    assert status == 401
    assert (await login(client, "homeowner", "long-enough-1"))["must_change"] is False


@pytest.mark.production_password_cost
async def test_passwords_are_stored_hashed(stack: WebStack, client: TestClient) -> None:
    await login(client, "homeowner")
    stored = (stack.cfg.device.data_dir / "web-users.json").read_text()
    assert "nattery\"" not in stored
    assert [a["password_hash"][:17] for a in json.loads(stored).values()] == ["scrypt$16384$8$1$"] * 2
    assert (stack.cfg.device.data_dir / "web-users.json").stat().st_mode & 0o077 == 0


async def test_login_is_rate_limited(stack: WebStack, client: TestClient) -> None:
    for _ in range(stack.cfg.web.login_max_failures):
        status, body = await api(client, "POST", "/api/v1/login", {"account": "installer", "password": "guess"})
        assert (status, body["field"]) == (401, "password")
    status, body = await api(client, "POST", "/api/v1/login", {"account": "installer", "password": "installer"})
    assert status == 429 and "try again in" in body["error"]
    events = await stack.store.call(Store.events, 10)
    assert sum(e["kind"] == "login" and e["level"] == "warning" for e in events) == stack.cfg.web.login_max_failures


async def test_bad_login_input_names_the_field(client: TestClient) -> None:
    status, body = await api(client, "POST", "/api/v1/login", {"account": "root", "password": "x"})
    assert (status, body["field"]) == (400, "account") and "allowed: homeowner, installer" in body["error"]
    response = await client.post("/api/v1/login", data=b"{not json", headers={
        "X-CSRF-Token": await csrf(client), "Content-Type": "application/json"})
    assert response.status == 400 and "not valid JSON" in (await response.json())["error"]


async def test_homeowner_is_refused_installer_endpoints(homeowner: TestClient) -> None:
    for method, path, body in [("GET", "/api/v1/registers", None), ("GET", "/api/v1/health", None),
                               ("POST", "/api/v1/registers/battery_soc/read", None),
                               ("PUT", "/api/v1/registers/prog1_soc", {"value": 50, "confirm": True})]:
        status, data = await api(homeowner, method, path, body)
        assert status == 403 and data["error"] == "installer role required", path
    page = await homeowner.get("/installer")
    assert page.status == 403


@pytest.mark.parametrize("changes, field, message", [
    ({"battery": {"reserve_pct": 150}}, "battery.reserve_pct", "got 150.0, allowed: 0 to 100"),
    ({"planner": {"mode": "turbo"}}, "planner.mode", "allowed: auto, self_consumption"),
    ({"tariff": {"vat_pct": "lots"}}, "tariff.vat_pct", "expected a finite number"),
    ({"inverter": {"max_charge_w": 1}}, "inverter", "cannot be changed here"),
    ({"battery": {"capacity_wh": 1}}, "battery.capacity_wh", "cannot be changed here"),
])
async def test_settings_refuse_bad_values(homeowner: TestClient, changes: dict[str, Any], field: str, message: str) -> None:
    status, body = await api(homeowner, "PATCH", "/api/v1/settings", changes)
    assert status == 400
    assert body["field"] == field and message in body["error"]


async def test_settings_change_is_saved_and_logged(stack: WebStack, homeowner: TestClient) -> None:
    status, body = await api(homeowner, "PATCH", "/api/v1/settings", {
        "planner": {"mode": "self_consumption"}, "battery": {"reserve_pct": 25}, "tariff": {"vat_pct": 7}})
    assert status == 200, body
    assert body["planner"]["mode"] == "self_consumption" and body["battery"]["reserve_pct"] == 25
    saved = json.loads((stack.cfg.device.data_dir / "settings.json").read_text())
    assert saved["sections"]["battery"] == {"reserve_pct": 25}
    events = await stack.store.call(Store.events, 5)
    assert events[0]["kind"] == "settings" and events[0]["data"]["by"] == "homeowner"


@pytest.mark.parametrize("body, field", [
    ({"action": "explode", "power_w": 100, "until": "23:59"}, "action"),
    ({"action": "charge", "power_w": 99_999, "until": "23:59"}, "power_w"),
    ({"action": "charge", "power_w": "lots", "until": "23:59"}, "power_w"),
    ({"action": "charge", "power_w": 1000, "until": "25:00"}, "until"),
    ({"action": "charge", "power_w": 1000, "until": "2020-01-01T00:00:00Z"}, "until"),
])
async def test_manual_override_refuses_bad_input(stack: WebStack, homeowner: TestClient, body: dict[str, Any], field: str) -> None:
    status, data = await api(homeowner, "POST", "/api/v1/manual", body)
    assert (status, data["field"]) == (400, field), data
    assert not [c for c in stack.bridge.commands if c[0] == "charge"]  # nothing reached the bridge


async def test_manual_charge_reaches_the_bridge_and_is_logged(stack: WebStack, homeowner: TestClient) -> None:
    status, body = await api(homeowner, "POST", "/api/v1/manual", {"action": "charge", "power_w": 2500, "until": "23:59"})
    assert status == 200, body
    action, args = stack.bridge.commands[-1]
    assert action == "charge" and args["power_w"] == 2500 and 0 < args["hold_s"] <= 86_400
    _, settings = await api(homeowner, "GET", "/api/v1/settings")
    assert settings["override"]["action"] == "charge"
    events = await stack.store.call(Store.events, 5)
    assert events[0]["kind"] == "control" and events[0]["data"]["power_w"] == 2500
    status, _ = await api(homeowner, "DELETE", "/api/v1/manual")
    assert status == 200 and stack.bridge.commands[-1][0] == "self_consumption"


async def test_a_refusal_by_the_bridge_is_passed_on(stack: WebStack, homeowner: TestClient) -> None:
    stack.bridge.refuse.add("discharge")
    status, body = await api(homeowner, "POST", "/api/v1/manual", {"action": "discharge", "power_w": 1000, "until": "23:59"})
    assert status == 502 and "refused by the stand-in" in body["error"]
    _, settings = await api(homeowner, "GET", "/api/v1/settings")
    assert settings["override"] is None


async def test_installer_reads_and_writes_a_register(stack: WebStack, installer: TestClient) -> None:
    status, rows = await api(installer, "GET", "/api/v1/registers")
    assert status == 200 and {r["name"] for r in rows} == set(stack.bridge.registers)
    soc = next(r for r in rows if r["name"] == "battery_soc")
    assert soc["unit"] == "%" and soc["raw"] == soc["value"]
    status, body = await api(installer, "POST", "/api/v1/registers/battery_soc/read")
    assert status == 200 and body["value"] == stack.bridge.registers["battery_soc"]
    status, body = await api(installer, "PUT", "/api/v1/registers/prog1_soc", {"value": 60})
    assert (status, body["field"]) == (400, "confirm")
    status, body = await api(installer, "PUT", "/api/v1/registers/prog1_soc", {"value": 60, "confirm": True})
    assert status == 200 and stack.bridge.registers["prog1_soc"] == 60
    events = await stack.store.call(Store.events, 5)
    assert events[0]["message"] == "wrote 60 to prog1_soc" and events[0]["data"]["by"] == "installer"


@pytest.mark.parametrize("name, body, status, field", [
    ("nonsense", {"value": 1, "confirm": True}, 404, "name"),
    ("battery_soc", {"value": 1, "confirm": True}, 400, "name"),  # read-only
    ("prog1_soc", {"value": 101, "confirm": True}, 400, "value"),
    ("prog1_soc", {"value": "full", "confirm": True}, 400, "value"),
    ("energy_pattern", {"value": 7, "confirm": True}, 400, "value"),
])
async def test_register_writes_are_validated(stack: WebStack, installer: TestClient, name: str, body: dict[str, Any],
                                             status: int, field: str) -> None:
    got, data = await api(installer, "PUT", f"/api/v1/registers/{name}", body)
    assert (got, data["field"]) == (status, field), data
    assert not [c for c in stack.bridge.commands if c[0] == "write_register"]


async def test_health_and_events_for_installers(installer: TestClient) -> None:
    status, health = await api(installer, "GET", "/api/v1/health")
    assert status == 200 and health["bridge"]["online"] is True and "modbus" in health["bridge"]
    assert health["prices"] == {"last_fetch": None, "known_until": None}
    status, body = await api(installer, "GET", "/api/v1/events?limit=0")
    assert (status, body["field"]) == (400, "limit")
    status, events = await api(installer, "GET", "/api/v1/events?limit=5")
    assert status == 200 and events[0]["kind"] == "login"


async def test_live_updates_arrive_as_server_sent_events(stack: WebStack, homeowner: TestClient) -> None:
    response = await homeowner.get("/live")
    assert response.headers["Content-Type"] == "text/event-stream"
    seen: list[float] = []
    async with asyncio.timeout(10):
        while len(seen) < 3:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                seen.append(json.loads(line[6:])["ts"])
    assert seen[2] > seen[1]  # new telemetry arrived while the stream was open
    response.close()


async def test_every_api_route_is_in_the_openapi_description(client: TestClient) -> None:
    app = web.Application()
    api_setup(app)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    routes -= {("get", "/api/openapi.json"), ("head", "/api/openapi.json")}
    described = {(method, path) for path, ops in PATHS.items() for method in ops}
    assert routes == described
    response = await client.get("/api/openapi.json")
    assert (await response.json())["openapi"].startswith("3.")


class TestPublicOverview:
    @pytest.fixture
    def web_settings(self) -> dict[str, Any]:
        return {"public_overview": True}

    async def test_overview_is_readable_without_login_but_nothing_else(self, client: TestClient) -> None:
        response = await client.get("/api/v1/overview")
        assert response.status == 200 and "soc_pct" in await response.json()
        assert (await client.get("/", allow_redirects=False)).status == 200
        assert (await client.get("/settings", allow_redirects=False)).status == 303
        status, _ = await api(client, "PATCH", "/api/v1/settings", {"battery": {"reserve_pct": 5}})
        assert status == 401


async def test_session_expiry_is_enforced(stack: WebStack, homeowner: TestClient) -> None:
    sessions = stack.app[SESSIONS]
    assert await sessions.sweep(now=time.time() + stack.cfg.web.session_lifetime_s + 1) >= 1
    status, _ = await api(homeowner, "GET", "/api/v1/settings")
    assert status == 401
