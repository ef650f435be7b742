"""Fixtures of the end-to-end tests: headless Chromium (Debian's) for the page tests.

One Chromium per test module (starting Playwright's driver and the browser takes a second or
two); each test opens a browser context of its own (cookies, storage, viewport, locale), so the
tests stay as independent as with a browser each. The fixture lives on the module's event loop:
a module using it sets ``pytestmark = BROWSER_TESTS`` (tests/e2e/browser.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.e2e.browser import CHROMIUM_ARGS, chromium_path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
