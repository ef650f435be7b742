"""The aggregator's ``GET /metrics`` against a real ``nattery-cloud serve``, parsed with
prometheus_client's own parser: uploads, rows, latency and devices online move with the uploads."""

from __future__ import annotations

import time

import aiohttp

from prometheus_client.parser import text_string_to_metric_families
from tests.cloud_sync.aggregator import Aggregator, aggregator, batch_body, cloud_target, pg_url  # noqa: F401
from tests.cloud_sync.test_app import post, readings


async def scrape(agg: Aggregator, credential: str) -> tuple[int, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    async with aiohttp.ClientSession() as s, s.get(f"{agg.url}/metrics", headers={"Authorization": f"Bearer {credential}"}) as r:
        text = await r.text()
        if r.status != 200:
            return r.status, {}
    return 200, {(x.name, tuple(sorted(x.labels.items()))): x.value
                 for family in text_string_to_metric_families(text) for x in family.samples}


async def test_metrics_count_uploads_rows_and_devices(aggregator: Aggregator) -> None:
    op = aggregator.add_operator("metrics-op")
    dev = aggregator.add_device("metrics-dev")
    status, before = await scrape(aggregator, op)
    assert status == 200
    stored = ("nattery_aggregator_uploads_total", (("status", "stored"), ("stream", "readings")))
    rows = ("nattery_aggregator_rows_total", (("stream", "readings"),))
    online = before[("nattery_aggregator_devices_online", ())]
    assert before[("nattery_aggregator_devices", ())] >= 1

    body = batch_body("metrics-dev", "readings", readings(1, 40))
    assert (await post(aggregator, dev, "readings", body))[0] == 200
    assert (await post(aggregator, dev, "readings", body))[0] == 200  # a retry: duplicate, no rows
    _, after = await scrape(aggregator, op)
    assert after[stored] - before.get(stored, 0) == 1
    assert after[("nattery_aggregator_uploads_total", (("status", "duplicate"), ("stream", "readings")))] >= 1
    assert after[rows] - before.get(rows, 0) == 40
    assert after[("nattery_aggregator_devices_online", ())] == online + 1
    count = ("nattery_aggregator_upload_seconds_count", ())
    assert after[count] - before.get(count, 0) == 2
    assert after[("nattery_aggregator_upload_seconds_bucket", (("le", "+Inf"),))] == after[count]
    seen = after[("nattery_aggregator_device_last_seen_timestamp_seconds", (("device", "metrics-dev"),))]
    assert abs(seen - time.time()) < 600
    newest = after[("nattery_aggregator_device_newest_reading_timestamp_seconds", (("device", "metrics-dev"),))]
    assert newest == readings(40, 40)[0]["ts"]


async def test_metrics_need_an_operator(aggregator: Aggregator) -> None:
    dev = aggregator.add_device("metrics-dev2")
    assert (await scrape(aggregator, dev))[0] == 403
    assert (await scrape(aggregator, "op.nobody.wrong"))[0] == 401
