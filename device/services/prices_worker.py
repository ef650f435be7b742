"""The prices worker (``python -m device.services.prices_worker``): the price source and the price
forecast in a short-lived process, so the long-lived app never loads pandas, entsoe-py or LiteRT.

:class:`device.prices.worker.PricesWorker` starts it for a round of work and closes its input
when the round is over; it then exits. One JSON object per line:

* in, first: ``{"prices": <PricesSettings>, "log": {"level": ..., "format": ...}}``, answered
  with ``{"ready": true}`` once the worker has loaded everything;
* in, then requests: ``{"op": "day_ahead" | "exaa" | "market_forecasts", "zone", "start", "end"}``
  (UTC epoch seconds) or ``{"op": "forecast", "db", "zone", "tz", "model", "horizon_h", "now",
  "history_days"}`` (forecast from the store at ``db`` and store the result there);
* out, one answer per request: ``{"result": ..., "requests_failed": n, "rate_limit_wait_s": s}``
  or ``{"error": "...", "kind": "fetch" | "value", "permanent": bool, ...}``.

Logs go to stderr, the app's log. Anything a library prints goes there too: stdout carries only
the answers. An unexpected exception ends the process (its traceback logged); the app sees that.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: see device/cli.py

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog

from common import logs
from device.config import ForecastSettings, PricesSettings
from device.forecast.price import PriceForecaster
from device.forecast.runner import model_path, reforecast
from device.prices.source import FetchError, PriceSource
from device.prices.sources import build_source
from device.store import AsyncStore

log = structlog.get_logger(__name__)


async def answer(source: PriceSource, request: dict[str, Any]) -> Any:
    """The result of one request (raises ``FetchError`` or ``ValueError`` for an error answer)."""
    op = request["op"]
    if op == "forecast":
        return await forecast(request)
    start, end = (datetime.fromtimestamp(request[k], UTC) for k in ("start", "end"))
    if op == "day_ahead":
        return await source.day_ahead(request["zone"], start, end)
    if op == "exaa":
        return await source.exaa(request["zone"], start, end)
    if op == "market_forecasts":
        return await source.market_forecasts(request["zone"], start, end)
    raise ValueError(f"op: got {op!r}, allowed: day_ahead, exaa, market_forecasts, forecast")


async def forecast(request: dict[str, Any]) -> dict[str, Any]:
    settings = ForecastSettings(model=None if request["model"] is None else Path(request["model"]),
                                horizon_h=request["horizon_h"])
    forecaster = await asyncio.to_thread(PriceForecaster, model_path(settings, request["zone"]), request["tz"])
    async with AsyncStore(request["db"]) as store:
        result = await reforecast(store, forecaster, request["zone"], request["now"], settings.horizon_h,
                                  request["history_days"])
    return {"methods": {} if result is None else result.methods,
            "model": None if forecaster.network is None else forecaster.network.path.name}


async def serve(lines: IO[str], out: IO[str]) -> None:
    """Answer the requests on ``lines`` until they end."""
    loop = asyncio.get_running_loop()
    setup = json.loads(await loop.run_in_executor(None, lines.readline))
    logs.configure(setup["log"]["level"], setup["log"]["format"])
    prices = setup["prices"]
    source = build_source(PricesSettings(**{**prices, "csv_path": prices["csv_path"] and Path(prices["csv_path"])}))
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    while line := await loop.run_in_executor(None, lines.readline):
        request = json.loads(line)
        reply: dict[str, Any]
        try:
            reply = {"result": await answer(source, request)}
        except FetchError as exc:
            reply = {"error": str(exc), "kind": "fetch", "permanent": exc.permanent}
        except ValueError as exc:
            reply = {"error": str(exc), "kind": "value"}
        reply["requests_failed"] = getattr(source, "requests_failed", 0)
        reply["rate_limit_wait_s"] = getattr(source, "rate_limit_wait_s", 0.0)
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever a library prints: to the log
    asyncio.run(serve(sys.stdin, answers))


if __name__ == "__main__":
    main()
