"""``GET /metrics``: the device's Prometheus exposition (see :mod:`device.metrics`).

Only with ``Authorization: Bearer <web.metrics_token>``; an empty token turns the endpoint off
(404), so a LAN neighbour learns nothing about the home by default. The store's and the disk's
figures are gathered off the event loop first; the collector then reads the health sources as
they are at this moment.
"""

from __future__ import annotations

import asyncio
import hmac
import shutil
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from common.proc_io import written_bytes
from device.metrics import HealthCollector, SystemFigures
from device.store import Store
from device.web.keys import CFG, DEPS

DAY_S = 86_400


def _disk_and_io(data_dir: Path) -> tuple[int | None, int | None, int | None]:
    try:
        usage = shutil.disk_usage(data_dir)
    except OSError:
        return None, None, written_bytes()
    return usage.free, usage.total, written_bytes()


async def system_figures(request: web.Request) -> SystemFigures:
    cfg, deps = request.app[CFG], request.app[DEPS]
    now = int(deps.clock())
    error = await deps.store.call(Store.price_forecast_error, cfg.prices.zone, now - DAY_S, now)
    free, size, written = await asyncio.to_thread(_disk_and_io, cfg.db_path.parent)
    return SystemFigures(disk_free_bytes=free, disk_size_bytes=size, written_bytes=written,
                         forecast_mae_eur_mwh=error["mae_eur_mwh"], forecast_slots=error["slots"])


def authorised(token: str, header: str | None) -> bool:
    expected = f"Bearer {token}".encode()
    return bool(token) and header is not None and hmac.compare_digest(header.encode(errors="surrogateescape"), expected)


async def metrics(request: web.Request) -> web.Response:
    token = request.app[CFG].web.metrics_token
    if not token:
        raise web.HTTPNotFound(text="/metrics is off: set web.metrics_token (NATTERY_WEB_METRICS_TOKEN)")
    if not authorised(token, request.headers.get("Authorization")):
        raise web.HTTPUnauthorized(text="/metrics needs Authorization: Bearer <web.metrics_token>",
                                   headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    figures = await system_figures(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(request.app[DEPS].health, lambda: figures))
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
