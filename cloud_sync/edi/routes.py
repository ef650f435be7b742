"""The gateway's HTTP API (registered by :func:`add_routes` from :mod:`cloud_sync.app`).

- ``POST /v1/edi[?name=]``: an interchange as the body (any content type, at most
  :data:`~cloud_sync.edi.pipeline.MAX_FILE_BYTES`, read in chunks: beyond it 413 without reading
  the rest). A device posts its own metering locations' files, an operator a market partner's.
  Answer: ``{"accepted", "file_id", "contrl", "aperak", "errors"}`` (200 whatever the verdict:
  the verdict is in the answer).
- ``GET /v1/edi/answers?name=…`` (device): the answers to its files of those names, and the
  reconciliation of its metering locations over the last ``ANSWER_DAYS`` days. Runs the
  device's ``edi`` stream files not run yet first, so the answers are there when it asks.
- ``GET /v1/edi/files/{id}`` and ``…/content`` (operator, or the device that sent it).
- ``GET /v1/edi/reconciliation?melo=&from=&to=[&format=csv][&slot_wh=&day_pct=]`` (operator;
  a device for its own locations).
- ``PUT /v1/edi/partners/{id}`` ``{"qualifier", "name"}`` and ``PUT /v1/edi/locations/{melo}``
  ``{"malo_id", "device_id"}`` (operator): the registry the application checks use.

A background task runs the new documents of every device whose ``edi`` stream took a batch
since it last looked (the ``streams`` table says which), every ``STREAM_EVERY_S`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from cloud_sync import query_params
from cloud_sync.db import Database
from cloud_sync.edi import pipeline, report, store
from cloud_sync.edi.reconcile import GERMAN, Tolerance, csv_rows
from cloud_sync.registry import Authenticator, Principal
from common import market_ids

log = structlog.get_logger(__name__)
STREAM_EVERY_S = 5.0
BODY_TIMEOUT_S = 300.0  # 32 MiB at about 1 Mbit/s
ANSWER_DAYS = 35
MAX_NAMES = 500
_CHUNK = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _bad_query(message: str) -> _Refused:
    return _Refused(400, message)


def add_routes(app: web.Application, db_key: web.AppKey[Database], auth_key: web.AppKey[Authenticator]) -> None:
    """Register the gateway's endpoints and its stream runner on ``app``."""
    api = _Api(db_key, auth_key)
    for method, path, handler in (
        ("POST", "/v1/edi", api.post_file), ("GET", "/v1/edi/answers", api.answers),
        ("GET", "/v1/edi/files/{id}", api.file), ("GET", "/v1/edi/files/{id}/content", api.content),
        ("GET", "/v1/edi/reconciliation", api.reconciliation),
        ("PUT", "/v1/edi/partners/{id}", api.partner), ("PUT", "/v1/edi/locations/{melo}", api.location),
    ):
        app.router.add_route(method, path, api.wrap(handler), expect_handler=api.expect if method == "POST" else None)
    app.cleanup_ctx.append(api.stream_runner)


class _Api:
    def __init__(self, db_key: web.AppKey[Database], auth_key: web.AppKey[Authenticator]) -> None:
        self.db_key, self.auth_key = db_key, auth_key

    def wrap(self, handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Refused as exc:
                log.warning("edi_request_refused", path=request.path, status=exc.status, reason=str(exc))
                return _refuse(exc.status, str(exc))

        return wrapped

    async def stream_runner(self, app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            since = 0.0  # at start every device's stream is looked at once
            while True:
                try:
                    since = await pipeline.run_new_streams(app[self.db_key], since)
                except Exception:  # logged; the next round tries again
                    log.exception("edi_stream_failed")
                await asyncio.sleep(STREAM_EVERY_S)

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _who(self, request: web.Request) -> Principal:
        return await request.app[self.auth_key].check(request.headers.get("Authorization"), request.remote or "")

    async def _operator(self, request: web.Request) -> Principal:
        who = await self._who(request)
        if who.kind != "op":
            raise _Refused(403, f"{request.method} {request.path} needs an operator credential")
        return who

    async def expect(self, request: web.Request) -> web.Response | None:
        """``Expect: 100-continue``: a body announced too large is refused before it is sent
        (aiohttp answers with the response returned here instead of calling the handler)."""
        if request.content_length is not None and request.content_length > pipeline.MAX_FILE_BYTES:
            return _refuse(413, _too_large(request.content_length))
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _refuse(417, f"Expect: {request.headers.get('Expect')!r:.40}; supported: 100-continue")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer's body has not begun (as aiohttp's own handler does)
        return None

    async def post_file(self, request: web.Request) -> web.Response:
        who = await self._who(request)
        name = request.query.get("name")
        if name is not None and not 1 <= len(name) <= 200:
            raise _Refused(400, f"name: {len(name)} characters; allowed: 1 to 200")
        if who.kind == "op" and name is not None:
            raise _Refused(400, "name: only a device names its files (an operator posts a partner's file)")
        if request.content_length is not None and request.content_length > pipeline.MAX_FILE_BYTES:
            raise _Refused(413, _too_large(request.content_length))
        data = await _read_limited(request)
        upload = (pipeline.Upload("device", device=who.name, name=name) if who.kind == "dev"
                  else pipeline.Upload("partner", operator=who.name))
        try:
            stored = await pipeline.receive(request.app[self.db_key], data, upload)
        except IntegrityError:
            raise _Refused(409, f"file name {name!r} of device {who.name!r} was received before") from None
        return web.json_response({"accepted": stored.accepted, "file_id": stored.id, "contrl": stored.contrl,
                                  "aperak": stored.aperak, "errors": stored.errors})

    async def answers(self, request: web.Request) -> web.Response:
        who = await self._who(request)
        if who.kind != "dev":
            raise _Refused(403, "answers are per device: operators read /v1/edi/files/{id}")
        names = request.query.getall("name", [])
        if len(names) > MAX_NAMES:
            raise _Refused(400, f"name: {len(names)} given; at most {MAX_NAMES} per request")
        db = request.app[self.db_key]
        await pipeline.run_stream(db, who.name)
        today = datetime.now(GERMAN).date()
        async with db.read() as conn:
            acks = await store.answers_for(conn, who.name, names)
            days = [d.summary() for melo in await store.device_locations(conn, who.name)
                    for d in await report.reconciliation(conn, melo, today - timedelta(days=ANSWER_DAYS), today)]
        return web.json_response({"acks": acks, "reconciliation": days})

    async def _file(self, request: web.Request) -> Any:
        who = await self._who(request)
        raw = request.match_info["id"]
        if not raw.isdigit():
            raise _Refused(400, f"id: got {raw!r:.40}, expected a file number")
        async with request.app[self.db_key].read() as conn:
            row = await store.file_row(conn, int(raw))
        if row is None or (who.kind == "dev" and row.device_id != who.name):
            raise _Refused(404, f"no EDI file {raw} {'of device ' + repr(who.name) if who.kind == 'dev' else ''}".strip())
        return row

    async def file(self, request: web.Request) -> web.Response:
        row = await self._file(request)
        return web.json_response({
            "id": row.id, "received_at": row.received_at, "source": row.source, "device_id": row.device_id,
            "operator": row.operator, "name": row.name, "size": row.size, "sha256": row.sha256,
            "sender_id": row.sender_id, "receiver_id": row.receiver_id, "reference": row.reference,
            "accepted": row.accepted, "contrl": row.contrl, "aperak": row.aperak, "errors": json.loads(row.errors),
        })

    async def content(self, request: web.Request) -> web.Response:
        row = await self._file(request)
        return web.Response(body=bytes(row.content), content_type="application/edifact")

    async def reconciliation(self, request: web.Request) -> web.StreamResponse:
        who = await self._who(request)
        melo = request.query.get("melo", "")
        db = request.app[self.db_key]
        if who.kind == "dev":
            async with db.read() as conn:
                if melo not in await store.device_locations(conn, who.name):
                    raise _Refused(403, f"device {who.name!r} may only read its own metering locations; {melo!r} is not one")
        try:
            market_ids.check_melo(melo)
        except market_ids.IdError as exc:
            raise _Refused(400, f"melo: {exc}") from None
        today = datetime.now(GERMAN).date()
        last = query_params.day(request.query, "to", error=_bad_query, default=today)
        first = query_params.day(request.query, "from", error=_bad_query, default=last - timedelta(days=30))
        if last < first or (last - first).days > 366:
            raise _Refused(400, f"from/to: got {first}..{last}, expected from <= to and at most 367 days")
        tolerance = Tolerance(
            query_params.integer(request.query, "slot_wh", error=_bad_query, default=Tolerance.slot_wh, low=0),
            query_params.decimal(request.query, "day_pct", error=_bad_query, default=Tolerance.day_pct, low=0))
        async with db.read() as conn:
            days = await report.reconciliation(conn, melo, first, last, tolerance)
        fmt = request.query.get("format", "json")
        if fmt == "csv":
            out = io.StringIO()
            csv.writer(out).writerows(csv_rows(days))
            return web.Response(text=out.getvalue(), content_type="text/csv",
                                headers={"Content-Disposition": f'attachment; filename="reconciliation_{melo}.csv"'})
        if fmt != "json":
            raise _Refused(400, f"format: got {fmt!r}, allowed: json, csv")
        return web.json_response({"melo_id": melo, "from": first.isoformat(), "to": last.isoformat(),
                                  "tolerance": {"slot_wh": tolerance.slot_wh, "day_pct": tolerance.day_pct},
                                  "days": [d.summary() for d in days]})

    async def partner(self, request: web.Request) -> web.Response:
        await self._operator(request)
        partner_id = request.match_info["id"]
        body = await _json_body(request)
        qualifier, name = str(body.get("qualifier", "")), str(body.get("name", ""))
        try:
            market_ids.check_partner(partner_id, qualifier)
        except market_ids.IdError as exc:
            raise _Refused(400, f"partner: {exc}") from None
        async with request.app[self.db_key].begin() as conn:
            await store.register_partner(conn, partner_id, qualifier, name)
        return web.json_response({"partner_id": partner_id, "qualifier": qualifier, "name": name})

    async def location(self, request: web.Request) -> web.Response:
        await self._operator(request)
        melo = request.match_info["melo"]
        body = await _json_body(request)
        malo, device = body.get("malo_id"), body.get("device_id")
        try:
            market_ids.check_melo(melo)
            if malo is not None:
                market_ids.check_malo(str(malo))
        except market_ids.IdError as exc:
            raise _Refused(400, f"location: {exc}") from None
        async with request.app[self.db_key].begin() as conn:
            await store.register_location(conn, melo, None if malo is None else str(malo),
                                          None if device is None else str(device))
        return web.json_response({"melo_id": melo, "malo_id": malo, "device_id": device})


def _too_large(size: int) -> str:
    return f"EDI file of {size} bytes; the limit is {pipeline.MAX_FILE_BYTES} bytes"


async def _read_limited(request: web.Request) -> bytes:
    """The body, read in chunks and refused (413) as soon as it passes the limit, or (408) when
    it takes longer than ``BODY_TIMEOUT_S`` to arrive."""
    parts, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > pipeline.MAX_FILE_BYTES:
                    raise _Refused(413, f"EDI file larger than the limit of {pipeline.MAX_FILE_BYTES} bytes")
                parts.append(chunk)
    except TimeoutError:
        raise _Refused(408, f"the EDI file did not arrive within {BODY_TIMEOUT_S:g} s ({size} bytes came)") from None
    return b"".join(parts)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Refused(400, "body: not JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, "body: expected a JSON object")
    return body
