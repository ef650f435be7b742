"""Fixtures: the web app on a real store file and a real mosquitto, driven over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from common import passwords
from tests.conftest import Broker, running_broker
from tests.device.web.harness import WebStack, web_config, web_stack

NEW_PASSWORDS = {"homeowner": "sunny-battery-7", "installer": "wiring-check-42"}

#: scrypt's cost for the accounts of these tests (production: ``common.passwords.N``, 2**14).
#: Each logged-in test hashed five times, about a quarter of a second of CPU; the hashes stay
#: real scrypt with the parameters written into them. The production cost is tested in
#: tests/common/test_passwords.py, tests/device/home/test_accounts.py and by the tests marked
#: ``production_password_cost`` here.
TEST_SCRYPT_N = 2**4


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("production_password_cost") is None:
        monkeypatch.setattr(passwords, "N", TEST_SCRYPT_N)


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for a module's tests (starting and stopping one took a sixth of a second per
    test): each test's device id, so its topics and retained messages, are its own (web_config)."""
    with running_broker(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture
def web_settings() -> dict[str, Any]:
    """Override in a test module to change the ``web`` section."""
    return {}


@pytest.fixture
async def stack(tmp_path: Path, mosquitto: Broker, web_settings: dict[str, Any]) -> AsyncIterator[WebStack]:
    async with web_stack(web_config(tmp_path, mosquitto.port, **web_settings)) as st:
        yield st


@pytest.fixture
async def client(stack: WebStack) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(stack.app, host="127.0.0.1")) as c:
        yield c


async def csrf(client: TestClient) -> str:
    response = await client.get("/api/v1/session")
    return str((await response.json())["csrf"])


async def api(client: TestClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the JSON API with the session's CSRF token; returns (status, decoded body)."""
    headers = {"X-CSRF-Token": await csrf(client)}
    response = await client.request(method, path, json=body, headers=headers)
    return response.status, await response.json()


async def login(client: TestClient, role: str, password: str | None = None) -> dict[str, Any]:
    status, data = await api(client, "POST", "/api/v1/login", {"account": role, "password": password or role_default(role)})
    assert status == 200, data
    return dict(data)


def role_default(role: str) -> str:
    return {"homeowner": "nattery", "installer": "installer"}[role]


async def logged_in(client: TestClient, role: str) -> None:
    """First login with the default password, then the forced change."""
    data = await login(client, role)
    assert data["must_change"] is True
    status, body = await api(client, "POST", "/api/v1/password", {
        "old_password": role_default(role), "new_password": NEW_PASSWORDS[role],
        "repeat_password": NEW_PASSWORDS[role]})
    assert status == 200, body


@pytest.fixture
async def homeowner(client: TestClient) -> TestClient:
    await logged_in(client, "homeowner")
    return client


@pytest.fixture
async def installer(client: TestClient) -> TestClient:
    await logged_in(client, "installer")
    return client
