"""The app's side of the prices worker: the price source and the price forecast in a child process.

The sources (entsoe-py, the CSV replay) and the forecast (LiteRT, the linear model, the history
by day) need pandas and tens of MB that the long-lived app would otherwise hold all day for a few
minutes of work. :class:`PricesWorker` starts ``python -m device.services.prices_worker`` on the
first request, talks to it in JSON lines (see that module) and ends it with :meth:`close` when a
round of work is over; the next request starts a new one.

A worker that crashes or does not answer in time is killed and the request fails with
:class:`WorkerError`, a transient :class:`~device.prices.source.FetchError`: the price service
retries it like an outage and shows it as ``last_error`` on ``health`` and the ``prices`` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from device.config import Config
from device.prices.source import FetchError, Slots, check_source

log = structlog.get_logger(__name__)
COMMAND = (sys.executable, "-m", "device.services.prices_worker")
LINE_LIMIT = 64 * 1024 * 1024  # one answer is one line: a month of quarter-hours is ~70 kB
FORECAST_TIMEOUT_S = 900.0  # generous: four years of history take seconds here, a Pi 3 is slower
CLOSE_TIMEOUT_S = 10.0
START_TIMEOUT_S = 300.0  # loading pandas and entsoe-py takes seconds on a Pi 3, more on a busy one


class WorkerError(FetchError):
    """The worker crashed or hung (it was killed); transient: the next request starts a new one."""


def fetch_timeout_s(cfg: Config) -> float:
    """How long one source request may take before the worker counts as hung: ENTSO-E's worst
    case (up to two entsoe-py calls, each up to four attempts of four ``timeout_s`` requests
    plus 5 s, up to 60 s apart; see :mod:`device.prices.entsoe_source`) and a minute to spare."""
    return 2 * 4 * (4 * cfg.prices.timeout_s + 5 + 60) + 60


class PricesWorker:
    """The configured price source and the price forecaster, served by a worker process.

    Implements :class:`~device.prices.source.PriceSource`; ``requests_failed`` and
    ``rate_limit_wait_s`` add up the figures of every worker it started.
    """

    def __init__(
        self, cfg: Config, *, fetch_timeout: float | None = None, forecast_timeout: float = FORECAST_TIMEOUT_S,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        check_source(cfg.prices)
        self.cfg = cfg
        self.name = cfg.prices.source
        self.fetch_timeout = fetch_timeout_s(cfg) if fetch_timeout is None else fetch_timeout
        self.forecast_timeout = forecast_timeout
        self.start_timeout = start_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._done = {"requests_failed": 0.0, "rate_limit_wait_s": 0.0}  # of workers that ended
        self._current = dict.fromkeys(self._done, 0.0)  # of the running one, as it last said

    @property
    def requests_failed(self) -> int:
        return int(self._done["requests_failed"] + self._current["requests_failed"])

    @property
    def rate_limit_wait_s(self) -> float:
        return self._done["rate_limit_wait_s"] + self._current["rate_limit_wait_s"]

    @property
    def pid(self) -> int | None:
        """The running worker's process id (``None`` between rounds)."""
        return None if self._proc is None else self._proc.pid

    # --- PriceSource -----------------------------------------------------------------------
    async def day_ahead(self, zone: str, start: datetime, end: datetime) -> Slots:
        return _slots(await self._fetch("day_ahead", zone, start, end))

    async def exaa(self, zone: str, start: datetime, end: datetime) -> Slots:
        return _slots(await self._fetch("exaa", zone, start, end))

    async def market_forecasts(self, zone: str, start: datetime, end: datetime) -> dict[str, Slots]:
        result = await self._fetch("market_forecasts", zone, start, end)
        return {name: _slots(slots) for name, slots in result.items()}

    # --- the forecast ----------------------------------------------------------------------
    async def forecast(self, db: Path, now: float, history_days: int) -> dict[str, Any]:
        """Forecast from what the store at ``db`` holds and store it there (see
        :func:`device.forecast.runner.reforecast`);
        returns ``methods`` (per delivery day, empty while no prices are stored) and ``model``
        (the model file's name, ``None`` without one). Raises ``ValueError`` when there is
        nothing to forecast from."""
        cfg = self.cfg
        result: dict[str, Any] = await self._request({
            "op": "forecast", "db": str(db), "zone": cfg.prices.zone, "tz": cfg.device.timezone,
            "model": None if cfg.forecast.model is None else str(cfg.forecast.model),
            "horizon_h": cfg.forecast.horizon_h, "now": now, "history_days": history_days,
        }, self.forecast_timeout)
        return result

    # --- the process -----------------------------------------------------------------------
    async def close(self) -> None:
        """End the worker (it exits when its input closes); killed if it does not in time."""
        async with self._lock:
            await self._end(kill=False)

    async def _fetch(self, op: str, zone: str, start: datetime, end: datetime) -> Any:
        return await self._request(
            {"op": op, "zone": zone, "start": int(start.timestamp()), "end": int(end.timestamp())}, self.fetch_timeout)

    async def _request(self, request: dict[str, Any], limit_s: float) -> Any:
        async with self._lock:
            if self._proc is not None and self._proc.returncode is not None:
                await self._end(kill=False)  # it ended between requests
            if self._proc is None:
                await self._start()
            answer = await self._exchange(request, limit_s, f"no answer to {request['op']}", f"during {request['op']}")
        for key in self._current:
            self._current[key] = float(answer.get(key, 0.0))
        if "error" in answer:
            if answer["kind"] == "value":
                raise ValueError(answer["error"])
            raise FetchError(answer["error"], permanent=bool(answer.get("permanent")))
        return answer["result"]

    async def _start(self) -> None:
        """A new worker, set up (the token goes through the pipe, never the command line) and ready."""
        cfg = self.cfg
        settings = {k: str(v) if k == "csv_path" and v is not None else v
                    for k, v in dataclasses.asdict(cfg.prices).items()}
        self._proc = await asyncio.create_subprocess_exec(
            *COMMAND, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=LINE_LIMIT)
        log.debug("prices_worker_started", pid=self._proc.pid)
        setup = {"prices": settings, "log": {"level": cfg.log.level, "format": cfg.log.format}}
        await self._exchange(setup, self.start_timeout, "not ready", "at start")

    async def _exchange(self, message: dict[str, Any], limit_s: float, silent: str, where: str) -> dict[str, Any]:
        """Send ``message`` to the running worker and read its one-line answer within ``limit_s``;
        a worker that does not answer is killed, one that ended is reaped (:class:`WorkerError`)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), limit_s)
        except asyncio.CancelledError:  # its answer would be taken for the next request's
            await self._end(kill=True)
            raise
        except TimeoutError:
            await self._end(kill=True)
            raise WorkerError(f"prices worker: {silent} within {limit_s:g} s; stopped it") from None
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        if not line:  # it ended: reap it (a kill would race the reaper for its exit code)
            code = await self._end(kill=False)
            raise WorkerError(f"prices worker exited (code {code}) {where}; its log is in the app's log")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def _end(self, *, kill: bool) -> int | None:
        """Stop the running worker (close its input, or kill it) and reap it; its exit code.

        Also when the caller is cancelled meanwhile: a worker is never left behind unreaped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        for key, value in self._current.items():
            self._done[key] += value
            self._current[key] = 0.0
        assert proc.stdin is not None
        proc.stdin.close()  # it exits when its input ends
        reaping = asyncio.ensure_future(_reap(proc, graceful=not kill))
        try:
            code = await asyncio.shield(reaping)
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            await reaping
            raise
        log.debug("prices_worker_ended", pid=proc.pid, code=code, killed=kill)
        return code


async def _reap(proc: asyncio.subprocess.Process, *, graceful: bool) -> int:
    """Wait for ``proc`` (up to :data:`CLOSE_TIMEOUT_S` if ``graceful``, then kill it) and read
    its output to the end, so its pipes close while the event loop still runs."""
    assert proc.stdout is not None
    if graceful:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT_S)
    if proc.returncode is None:
        proc.kill()
    code = await proc.wait()
    await proc.stdout.read()
    return code


def _slots(pairs: list[list[float]]) -> Slots:
    return [(int(ts), float(v)) for ts, v in pairs]

