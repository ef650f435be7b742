"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

No browser download: Playwright only brings its driver; the browser is the system's. Screenshots
go to ``artifacts/screenshots`` (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import ViewportSize

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("NATTERY_SCREENSHOTS", REPO / "artifacts" / "screenshots"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail("chromium is not installed (bash .ci/run installs it: apt-get install chromium)")
    return path


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
