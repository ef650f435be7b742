"""The browser tests' tools: ``nattery run --simulate`` as a process, and headless Chromium
(Debian's ``chromium-headless-shell``, else its ``chromium``) driven by Playwright.

No browser download: Playwright only brings its driver; the browser is the system's. Screenshots
go to ``artifacts/screenshots`` (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import ViewportSize

from tests.conftest import free_port, wait_for_server
from tests.device.prices.entsoe_api import Api, serve

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR", REPO / "artifacts" / "screenshots"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}
#: The marks of a browser test module (``pytestmark = BROWSER_TESTS``): its tests run on the
#: module's event loop, the one the module's Chromium (the ``browser`` fixture) lives on.
BROWSER_TESTS = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]


def chromium_path() -> str:
    """Debian's ``chromium-headless-shell`` where installed: the old headless shell, what Playwright
    itself runs for headless Chromium, at half the CPU time of the full browser in headless mode
    (the browser tests, measured); else Debian's ``chromium``."""
    path = shutil.which("chromium-headless-shell") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("chromium is not installed (bash .ci/run installs it: apt-get install chromium)")
    return path


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


@contextlib.contextmanager
def nattery_simulate(
    data_dir: Path, mqtt_port: int, speed: float = 60.0, env: dict[str, str] | None = None,
    start: str | None = None, **web: str
) -> Iterator[str]:
    """``nattery run --simulate`` as a user starts it (here on a test broker and a free port);
    yields the page's URL. ``speed`` makes the simulated day pass within minutes (demo time);
    ``start`` is its ``--start``. ``web`` settings go in as ``NATTERY_WEB_<KEY>`` environment
    variables, ``env`` as given."""
    port = free_port()
    env = {**os.environ, "NATTERY_MQTT_HOST": "127.0.0.1", "NATTERY_MQTT_PORT": str(mqtt_port),
           "NATTERY_WEB_HOST": "127.0.0.1", "NATTERY_LOG_FORMAT": "json", "NATTERY_DEVICE_ID": "browser",
           "NATTERY_INVERTER_POLL_INTERVAL_S": "1", **(env or {}),
           **{f"NATTERY_WEB_{key.upper()}": value for key, value in web.items()}}
    nattery = Path(sys.executable).with_name("nattery")
    log = (data_dir / "nattery.log").open("w")
    proc = subprocess.Popen(
        [str(nattery), "run", "--simulate", "--data-dir", str(data_dir), "--port", str(port), "--speed", str(speed),
         *(["--start", start] if start else [])],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_server(proc, port, data_dir / "nattery.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@contextlib.contextmanager
def entsoe_stand_in(published_until: date) -> Iterator[str]:
    """The local ENTSO-E stand-in (tests/device/prices/entsoe_api.py) on its own event loop in a
    thread, publishing day-ahead prices up to ``published_until``; yields the URL for
    ``ENTSOE_ENDPOINT_URL``, so the appliance's real price client fetches from it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="entsoe-stand-in", daemon=True)
    thread.start()
    port = free_port()
    runner = asyncio.run_coroutine_threadsafe(serve(Api(published_until=published_until), port), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port}/api"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
