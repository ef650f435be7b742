"""The aggregator's HTTP API (aiohttp). Every call but ``/v1/health`` is authenticated.

Devices:   ``POST /v1/ingest/{stream}`` (a batch, see :mod:`common.sync_protocol`),
           ``GET /v1/streams/{stream}?store=`` (what the aggregator holds of that store: where
           to resume).
Operators: ``GET /v1/devices`` (each with its active alerts), ``GET /v1/alerts``, ``GET /metrics`` (Prometheus); operators and the device itself: ``GET /v1/devices/{id}``,
           ``GET /v1/devices/{id}/readings``, ``GET /v1/devices/{id}/energy/daily``.
Errors are JSON ``{"error": "<what was wrong>"}`` with a 4xx status (a 500, which should not
happen, is JSON too and says no more than that); a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cloud_sync import queries, query_params
from cloud_sync import operator_web
from cloud_sync.alerting import with_alerts
from cloud_sync.balance import api as balance_api
from cloud_sync.edi import routes as edi_routes
from cloud_sync.community import api as community_api
from cloud_sync.db import Database, connect
from cloud_sync.ingest import CRASH_VARIABLE, StreamProgress, ingest_in_order
from cloud_sync.limits import FailureLimiter, Limits
from cloud_sync.metrics import AggregatorMetrics
from cloud_sync.registry import Authenticator, AuthError, Principal
from common.crash import crash_point
from common.sync_protocol import CONTENT_TYPE, MAX_BODY_BYTES, MAX_SEQ, STORE_ID, BatchError, decode

log = structlog.get_logger(__name__)
DB = web.AppKey("db", Database)
AUTH = web.AppKey("auth", Authenticator)
PROGRESS = web.AppKey("progress", StreamProgress)
LIMITS = web.AppKey("limits", Limits)
DECODES = web.AppKey("decodes", asyncio.Semaphore)
DECODER = web.AppKey("decoder", ThreadPoolExecutor)
METRICS = web.AppKey("metrics", AggregatorMetrics)
MAX_READ_LIMIT = 10_000
# Bodies up to this size (compressed) are decoded on the event loop, where a thread hop would cost
# more than the decode: a minute of one device's readings is about 2 kB. Valid items compress
# about 80:1 at most (1 MB of repeated 250-character texts to 12 kB, 5 ms to decode), so this
# holds the loop for a few ms at worst; larger bodies go to the decode threads.
INLINE_DECODE_BYTES = 8 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(target: str, limits: Limits = Limits()) -> web.Application:
    """The application for a database ``target`` (SQLite path or ``postgresql://`` URL)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES + 1, middlewares=[_errors])
    app[PROGRESS] = StreamProgress()
    app[LIMITS] = limits
    app[DECODES] = asyncio.Semaphore(limits.decodes)
    app[METRICS] = AggregatorMetrics()

    async def database(app: web.Application) -> AsyncIterator[None]:
        db = await connect(target)
        app[DB] = db
        app[AUTH] = Authenticator(db, FailureLimiter(limits.auth_failures, limits.auth_window_s))
        log.info("aggregator_database", kind=db.kind)
        yield
        await db.close()

    async def decoder(app: web.Application) -> AsyncIterator[None]:
        # Its own threads, as many as decode slots: each thread that inflates batches keeps a
        # malloc arena of its own, so few threads keep the resident memory low.
        app[DECODER] = ThreadPoolExecutor(max_workers=limits.decodes, thread_name_prefix="decode")
        yield
        app[DECODER].shutdown(wait=False, cancel_futures=True)

    app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(decoder)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/ingest/{stream}", ingest_batch)
    app.router.add_get("/v1/streams/{stream}", stream_state)
    app.router.add_get("/v1/devices", list_devices)
    app.router.add_get("/v1/alerts", list_alerts)
    app.router.add_get("/v1/devices/{device}", one_device)
    app.router.add_get("/v1/devices/{device}/readings", device_readings)
    app.router.add_get("/v1/devices/{device}/energy/daily", daily_energy)
    edi_routes.add_routes(app, DB, AUTH)
    community_api.add_routes(app, DB, AUTH)
    operator_web.add_routes(app, DB, AUTH)
    balance_api.add_routes(app, DB, AUTH)
    return app


class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _bad_query(message: str) -> ApiError:
    return ApiError(400, message)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (ApiError, AuthError, BatchError) as exc:
        log.warning("request_refused", path=request.path, status=exc.status, reason=str(exc))
        body: dict[str, Any] = {"error": str(exc)}
        stored_seq = getattr(exc, "stored_seq", None)
        if stored_seq is not None:
            body["last_seq"] = stored_seq
        retry_after = getattr(exc, "retry_after", None)
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return web.json_response(body, status=exc.status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return web.json_response({"error": _http_error(request, exc)}, status=exc.status, headers=headers)
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return web.json_response({"error": "internal error; the aggregator's log has the details"}, status=500)


def _http_error(request: web.Request, exc: web.HTTPException) -> str:
    """What aiohttp itself refused, said the way the API's own errors are."""
    if isinstance(exc, web.HTTPNotFound):
        return f"no such endpoint: {request.method} {request.path}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method {request.method} is not allowed on {request.path}; allowed: {allowed}"
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return f"request body exceeds {MAX_BODY_BYTES} bytes"
    return f"{exc.status} {exc.reason}"


async def _principal(request: web.Request) -> Principal:
    return await request.app[AUTH].check(request.headers.get("Authorization"), request.remote or "")


async def _may_read(request: web.Request) -> str:
    """The device in the URL, if the caller is an operator or that very device."""
    who = await _principal(request)
    device = request.match_info["device"]
    if who.kind == "dev" and who.name != device:
        raise ApiError(403, f"device {who.name!r} may not read data of device {device!r}")
    return device


def _stream(request: web.Request, name: str) -> str:
    try:
        return queries.check_stream(name)
    except ValueError as exc:
        raise ApiError(404, str(exc)) from None


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "database": request.app[DB].kind})


async def metrics(request: web.Request) -> web.Response:
    who = await _principal(request)
    if who.kind != "op":
        raise ApiError(403, "/metrics needs an operator credential")
    figures = request.app[METRICS]
    figures.fleet.registered, figures.fleet.online = await queries.fleet_counts(request.app[DB])
    figures.fleet.devices = await queries.device_times(request.app[DB])
    figures.fleet.edi_files = await queries.edi_file_counts(request.app[DB])
    return web.Response(body=generate_latest(figures.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def ingest_batch(request: web.Request) -> web.Response:
    started = time.perf_counter()
    who = await _principal(request)
    if who.kind != "dev":
        raise ApiError(403, "only devices upload batches")
    stream = _stream(request, request.match_info["stream"])
    if request.content_type != CONTENT_TYPE:
        raise ApiError(415, f"Content-Type: got {request.content_type!r}, expected {CONTENT_TYPE!r}")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"batch body is {request.content_length} bytes; the limit is {MAX_BODY_BYTES}")
    async with _decode_slot(request):
        body = await _read_body(request)
        if len(body) <= INLINE_DECODE_BYTES:  # handing it to a thread would cost more than decoding it
            batch = decode(body)
        else:  # CPU-bound: keep the loop answering
            batch = await asyncio.get_running_loop().run_in_executor(request.app[DECODER], decode, body)
        del body
    if batch.stream != stream:
        raise ApiError(400, f"header.stream {batch.stream!r} does not match the URL's stream {stream!r}")
    if batch.device != who.name:
        raise ApiError(403, f"device {who.name!r} may not write data of device {batch.device!r}")
    crash_point(CRASH_VARIABLE, "decoded")
    result = await ingest_in_order(request.app[DB], batch, request.app[PROGRESS], request.app[LIMITS].order_wait_s)
    log.debug("batch", device=batch.device, stream=stream, first_seq=batch.first_seq,
              last_seq=batch.last_seq, status=result.status)
    figures = request.app[METRICS]
    figures.uploads.labels(stream, result.status).inc()
    if result.status == "stored":
        figures.rows.labels(stream).inc(len(batch.items))
    figures.upload_seconds.observe(time.perf_counter() - started)
    return web.json_response({"status": result.status, "last_seq": result.last_seq})


async def _read_body(request: web.Request) -> bytes:
    """The whole body, or 408 when it has not arrived within ``body_timeout_s`` (no timer when
    it is all there already, as a small batch usually is when its request starts)."""
    if request.content.is_eof():
        return await request.read()
    limit = request.app[LIMITS].body_timeout_s
    try:
        async with asyncio.timeout(limit):
            return await request.read()
    except TimeoutError:
        raise ApiError(408, f"the batch body did not arrive within {limit:g} s") from None


@asynccontextmanager
async def _decode_slot(request: web.Request) -> AsyncIterator[None]:
    """One of ``Limits.decodes`` slots for reading and decoding a batch (a decode may hold up to
    the decompressed cap in memory): waits up to ``decode_wait_s``, then 503 + Retry-After."""
    slots, limits = request.app[DECODES], request.app[LIMITS]
    try:
        if slots.locked():  # else taken at once, without the timer
            async with asyncio.timeout(limits.decode_wait_s):
                await slots.acquire()
        else:
            await slots.acquire()
    except TimeoutError:
        retry = max(1, math.ceil(limits.decode_wait_s))
        raise ApiError(503, f"busy decoding {limits.decodes} other batches; retry after {retry} s",
                       retry_after=retry) from None
    try:
        yield
    finally:
        slots.release()


async def stream_state(request: web.Request) -> web.Response:
    who = await _principal(request)
    if who.kind != "dev":
        raise ApiError(403, "stream state is per device: use /v1/devices/{id}")
    stream = _stream(request, request.match_info["stream"])
    store = _store_query(request) or ""
    return web.json_response(await queries.stream_state(request.app[DB], who.name, stream, store))


async def list_devices(request: web.Request) -> web.Response:
    who = await _principal(request)
    if who.kind != "op":
        raise ApiError(403, "listing devices needs an operator credential")
    return web.json_response({"devices": with_alerts(await queries.devices(request.app[DB]))})


async def list_alerts(request: web.Request) -> web.Response:
    who = await _principal(request)
    if who.kind != "op":
        raise ApiError(403, "listing alerts needs an operator credential")
    devices = with_alerts(await queries.devices(request.app[DB]))
    return web.json_response({"alerts": [{"device": d["id"], **a} for d in devices for a in d["alerts"]]})


async def one_device(request: web.Request) -> web.Response:
    device = await _may_read(request)
    found = await queries.devices(request.app[DB], only=device)
    if not found:
        raise ApiError(404, f"device {device!r} is not registered")
    return web.json_response(with_alerts(found)[0])


async def device_readings(request: web.Request) -> web.Response:
    device = await _may_read(request)
    stream = request.query.get("stream", "readings")
    if stream not in ("readings", "readings_1min"):
        raise ApiError(400, f"stream: got {stream!r}, allowed: readings, readings_1min")
    after = query_params.integer(request.query, "after", error=_bad_query, default=0, low=0, high=MAX_SEQ)
    limit = query_params.integer(request.query, "limit", error=_bad_query, default=1000, low=1, high=MAX_READ_LIMIT)
    store = _store_query(request)
    if store is None:
        store = await queries.current_store(request.app[DB], device, stream) or ""
    items = await queries.readings(request.app[DB], device, stream, store, after, limit)
    return web.json_response({"device": device, "stream": stream, "store": store, "items": items})


async def daily_energy(request: web.Request) -> web.Response:
    device = await _may_read(request)
    today = datetime.now(UTC).date()
    start = query_params.day(request.query, "from", error=_bad_query, default=today - timedelta(days=6))
    end = query_params.day(request.query, "to", error=_bad_query, default=today)
    if end < start or (end - start).days > 366:
        raise ApiError(400, f"from/to: got {start}..{end}, expected from <= to and at most 367 days")
    tz = request.query.get("tz", "UTC")
    try:
        days = await queries.daily_energy(request.app[DB], device, start, end, tz)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ApiError(400, f"tz: got {tz!r}, expected an IANA time zone ({exc})") from None
    return web.json_response({"device": device, "tz": tz, "days": days})


def _store_query(request: web.Request) -> str | None:
    """``?store=``: a device store's identity ("" for stores older than identities)."""
    store = request.query.get("store")
    if store and not STORE_ID.match(store):
        raise ApiError(400, f"store: got {store!r:.80}, expected 1-64 of A-Z a-z 0-9 _ -")
    return store


async def serve(target: str, host: str, port: int, limits: Limits = Limits()) -> None:
    """Run until cancelled (Ctrl-C / SIGTERM)."""
    runner = web.AppRunner(create_app(target, limits), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("aggregator_listening", url=f"http://{host}:{port}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
