"""Hostile and clumsy input through the web page and its API (issue 16: findings 5-8, 12).

Each test sends what an attacker or a broken integration would and checks the answer is a clear
refusal naming the field, and that nothing was stored, changed or sent to the bridge.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from device.store import Reading
from tests.device.web.conftest import api
from tests.device.web.harness import WebStack


async def telemetry_where(stack: WebStack, accept: Callable[[Reading], bool]) -> Reading:
    """The first reading the web page received that ``accept``s (waits for the bridge to send it)."""
    arrived: asyncio.Future[Reading] = asyncio.get_running_loop().create_future()

    def check(reading: Reading) -> None:
        if accept(reading) and not arrived.done():
            arrived.set_result(reading)

    unlisten = stack.link.listen(check)
    try:
        async with asyncio.timeout(10):
            return await arrived
    finally:
        unlisten()


# --- 7: no open redirect ----------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/%09/evil.example", "/%0a/evil.example", "/%0d%0a/evil.example", "//evil.example", "/\\evil.example",
    "/%5Cevil.example", "https://evil.example/", "/%20/evil.example", "%2F%2Fevil.example", "///evil.example",
])
async def test_language_switch_redirects_only_within_the_site(client: TestClient, target: str) -> None:
    response = await client.get(f"/lang/en?next={target}", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/")


async def test_language_switch_keeps_a_same_site_path(client: TestClient) -> None:
    response = await client.get("/lang/de?next=/prices%3Fday%3D1", allow_redirects=False)
    assert response.headers["Location"] == "/prices?day=1"


# --- 8: telemetry cannot inject markup or break a page -----------------------------------------

HOSTILE = '</script><script>alert(1)</script><!--'


def embedded_json(page: str, element_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert match is not None, element_id
    return json.loads(match.group(1))


async def test_telemetry_strings_are_escaped_in_pages(stack: WebStack, installer: TestClient) -> None:
    stack.bridge.extra = {"state": HOSTILE, "mode": "<b>x</b>&"}
    await telemetry_where(stack, lambda r: r.roles.get("state") == HOSTILE)
    for path in ("/", "/installer"):
        response = await installer.get(path)
        page = await response.text()
        assert response.status == 200, path
        assert "<script>alert(1)" not in page and "<b>x</b>" not in page, path
        assert embedded_json(page, "live-data")["state"] == HOSTILE, path


async def test_wrong_typed_telemetry_renders_without_crashing(stack: WebStack, installer: TestClient) -> None:
    stack.bridge.extra = {"battery_w": "lots", "soc_pct": [1], "grid_w": {"a": 1}, "pv_w": True,
                          "registers": {"battery_soc": "full", "prog1_soc": HOSTILE}}
    reading = await telemetry_where(stack, lambda r: set(r.registers) == {"battery_soc", "prog1_soc"})
    assert reading.registers == {"battery_soc": None, "prog1_soc": None}
    for path in ("/", "/installer", "/api/v1/overview", "/api/v1/registers"):
        response = await installer.get(path)
        assert response.status == 200, (path, await response.text())
    _, overview = await api(installer, "GET", "/api/v1/overview")
    assert overview["battery_w"] is None and overview["soc_pct"] is None and overview["pv_w"] is None
    page = await (await installer.get("/installer")).text()
    assert "<script>alert(1)" not in page
