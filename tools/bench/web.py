"""Benchmark: what each page of the local web page costs a browser.

    python -m tools.bench.web [--runs N] [--url URL --password PW]

Without ``--url`` it starts ``nattery run --simulate`` on 127.0.0.1 with a private mosquitto and
realistic data in its store (a month of settled slots, today's prices, a price forecast and a
plan). With ``--url`` it measures a running instance (homeowner ``--password``, after the
first-login change). Each page is loaded ``--runs`` times
in a fresh headless Chromium context (cold cache, so every asset counts):

* ``page_bytes``: everything transferred for the page (headers + bodies of the HTML, CSS, JS,
  the vendored chart library), from the browser's own request sizes;
* ``first_render_ms``: the first contentful paint after navigation start (median of the runs).

Targets: ``page_bytes`` <= 300 kB for every page, overview ``first_render_ms`` <= 1000 on
127.0.0.1. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, async_playwright

from device.store import Store
from tests.conftest import Broker, free_port
from tests.device.web.harness import seed_history
from tests.e2e.browser import CHROMIUM_ARGS, DESKTOP, chromium_path, nattery_simulate

PAGES = ("/", "/prices", "/history", "/history/report", "/savings", "/settings")
BUDGET_BYTES = 300_000
OVERVIEW_BUDGET_MS = 1000.0
PASSWORD = "bench-password-1"


@contextlib.contextmanager
def local_site() -> Iterator[str]:
    """``nattery run --simulate`` on a private mosquitto, with realistic data; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(free_port(), Path(tmp) / "mosquitto.conf")
        broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker.start()
        try:
            with nattery_simulate(Path(tmp), broker.port, speed=1.0) as url:
                store = Store(Path(tmp) / "nattery.db")
                seed_history(store, ZoneInfo("Europe/Berlin"), time.time())
                store.close()
                yield url
        finally:
            broker.stop()


async def cookies_after_login(browser: Browser, url: str, password: str, first: bool) -> list[Any]:
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(url + "/login")
    await page.fill("#password", "nattery" if first else password)
    await page.click("form.panel button[type=submit]")
    if first:
        await page.fill("#old_password", "nattery")
        await page.fill("#new_password", password)
        await page.fill("#repeat_password", password)
        await page.click("form.panel button[type=submit]")
    await page.wait_for_url(url + "/")
    cookies = await context.cookies()
    await context.close()
    return list(cookies)


async def measure(browser: Browser, url: str, path: str, cookies: list[Any]) -> tuple[int, float]:
    """One cold load: (bytes transferred, first contentful paint in ms)."""
    context = await browser.new_context(viewport=DESKTOP)
    await context.add_cookies(cookies)
    page = await context.new_page()
    requests = []
    page.on("requestfinished", lambda request: requests.append(request))
    await page.goto(url + path, wait_until="load")
    await page.wait_for_timeout(200)  # SSE's first event and the charts' drawing settle
    paint = await page.evaluate(
        "() => { const p = performance.getEntriesByName('first-contentful-paint')[0];"
        " return p ? p.startTime : performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd; }")
    total = 0
    for request in requests:
        if request.url.endswith("/live") or "/live?" in request.url:
            continue  # the live stream never finishes; its first event is a few hundred bytes
        sizes = await request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    await context.close()
    return total, float(paint)


async def run(url: str, password: str, runs: int, first: bool) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        pw = await stack.enter_async_context(async_playwright())
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        stack.push_async_callback(browser.close)
        cookies = await cookies_after_login(browser, url, password, first)
        results: dict[str, Any] = {}
        for path in PAGES:
            samples = [await measure(browser, url, path, cookies) for _ in range(runs)]
            results[path] = {
                "page_bytes": max(s[0] for s in samples),
                "first_render_ms": round(statistics.median(s[1] for s in samples), 1),
            }
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--url", help="measure a running instance instead of starting one")
    parser.add_argument("--password", default=PASSWORD, help="homeowner password of --url")
    args = parser.parse_args()
    if args.url:
        pages = asyncio.run(run(args.url, args.password, args.runs, first=False))
    else:
        with local_site() as url:
            pages = asyncio.run(run(url, args.password, args.runs, first=True))
    for path, figures in pages.items():
        print(f"{path:16} {figures['page_bytes'] / 1000:7.1f} kB  first render {figures['first_render_ms']:6.1f} ms")
    ok = all(f["page_bytes"] <= BUDGET_BYTES for f in pages.values()) and \
        pages["/"]["first_render_ms"] <= OVERVIEW_BUDGET_MS
    print("within budget" if ok else "OVER BUDGET (300 kB per page, overview 1000 ms)")
    print(json.dumps({
        "bench": "web", "runs": args.runs, "pages": pages,
        "page_bytes_max": max(f["page_bytes"] for f in pages.values()),
        "overview_first_render_ms": pages["/"]["first_render_ms"], "within_budget": ok,
    }))


if __name__ == "__main__":
    main()
