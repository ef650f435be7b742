"""Logged-in sessions survive a restart of the web app (every update restarts it), expire, and
end when the account's password changes — here or at hand-over while the app was down.

Each "restart" closes the whole web stack (app, store, MQTT session) and builds a new one on the
same data directory: nothing survives in memory.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from device.home.accounts import Users
from device.store import Store
from device.web.keys import COOKIE
from tests.conftest import Broker
from tests.device.web.conftest import NEW_PASSWORDS, api, logged_in, login
from tests.device.web.harness import web_config, web_stack


def cookie_of(client: TestClient) -> str:
    return next(c.value for c in client.session.cookie_jar if c.key == COOKIE)


async def role_with(cookie: str, tmp_path: Path, broker: Broker) -> tuple[str | None, str]:
    """A fresh app on the same data directory: who the cookie is logged in as, and its CSRF token."""
    async with web_stack(web_config(tmp_path, broker.port)) as stack, \
            TestClient(TestServer(stack.app, host="127.0.0.1")) as client:
        response = await client.get("/api/v1/session", headers={"Cookie": f"{COOKIE}={cookie}"})
        body = await response.json()
        return body["role"], body["csrf"]


async def test_a_login_survives_an_app_restart_and_a_password_change_ends_the_others(
    tmp_path: Path, mosquitto: Broker
) -> None:
    cfg = web_config(tmp_path, mosquitto.port)
    async with web_stack(cfg) as stack, TestClient(TestServer(stack.app, host="127.0.0.1")) as first:
        await logged_in(first, "homeowner")
        kept = cookie_of(first)
        csrf = (await (await first.get("/api/v1/session")).json())["csrf"]
        stored = await stack.store.call(Store.web_sessions, 0.0)
        assert len(stored) == 1 and kept not in str(stored)  # only its hash is on the card
    assert await role_with(kept, tmp_path, mosquitto) == ("homeowner", csrf)  # same session, same token
    assert (await role_with("forged-cookie", tmp_path, mosquitto))[0] is None

    # a second login elsewhere; then the first one changes the password (after a restart)
    async with web_stack(cfg) as stack, TestClient(TestServer(stack.app, host="127.0.0.1")) as other:
        await login(other, "homeowner", NEW_PASSWORDS["homeowner"])
        other_cookie = cookie_of(other)
    async with web_stack(cfg) as stack, TestClient(TestServer(stack.app, host="127.0.0.1")) as first:
        first.session.cookie_jar.update_cookies({COOKIE: kept})
        status, body = await api(first, "POST", "/api/v1/password", {
            "old_password": NEW_PASSWORDS["homeowner"], "new_password": "another-pass-9",
            "repeat_password": "another-pass-9"})
        assert status == 200, body
    assert (await role_with(other_cookie, tmp_path, mosquitto))[0] is None  # revoked, also after a restart
    assert (await role_with(kept, tmp_path, mosquitto))[0] == "homeowner"  # the one that changed it stays


async def test_a_password_set_at_hand_over_ends_the_stored_sessions(tmp_path: Path, mosquitto: Broker) -> None:
    cfg = web_config(tmp_path, mosquitto.port)
    async with web_stack(cfg) as stack, TestClient(TestServer(stack.app, host="127.0.0.1")) as client:
        await logged_in(client, "homeowner")
        cookie = cookie_of(client)
    users = Users.for_config(cfg)  # `nattery commission` while the app is down
    await users.load()
    await users.set_password("homeowner", "handed-over-77")
    assert (await role_with(cookie, tmp_path, mosquitto))[0] is None
    store = Store(cfg.db_path)
    assert store.web_sessions(0.0) == []  # deleted, not just ignored
    store.close()


async def test_stored_sessions_expire(tmp_path: Path, mosquitto: Broker) -> None:
    cfg = web_config(tmp_path, mosquitto.port, session_lifetime_s=300)
    async with web_stack(cfg) as stack, TestClient(TestServer(stack.app, host="127.0.0.1")) as client:
        await logged_in(client, "homeowner")
        (row,) = await stack.store.call(Store.web_sessions, 0.0)
        assert 290 < row["expires"] - time.time() <= 300
        assert await stack.store.call(Store.web_sessions, row["expires"] + 1) == []
        assert await stack.store.call(Store.prune_web_sessions, row["expires"] + 1) == 1
