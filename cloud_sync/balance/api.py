"""The balance groups' operator API (an operator credential for every call).

``POST/GET /v1/balance/participants``, ``/v1/balance/locations``, ``/v1/balance/groups``;
``POST /v1/balance/groups/{id}/members`` (join), ``POST /v1/balance/groups/{id}/members/{melo}/end``
(leave), ``GET /v1/balance/groups/{id}/members`` (history); ``GET /v1/balance/groups/{id}/schedule
?day=&format=json|csv`` (the day-ahead position); ``POST /v1/balance/prices?name=`` (CSV body);
``POST /v1/balance/groups/{id}/runs`` (settle), ``GET /v1/balance/groups/{id}/runs``,
``GET /v1/balance/runs/{run}`` (summary and anomalies), ``GET /v1/balance/runs/{run}/report
?by=slot|member&format=json|csv|parquet``. Refusals are ``{"error": …}`` with 400, 403, 404, 409
or 422, naming the field and the value.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from cloud_sync import query_params
from cloud_sync.balance import registry, reports, runs
from cloud_sync.balance.registry import BalanceError
from cloud_sync.balance.timegrid import TimeError, parse_boundary
from cloud_sync.db import Database
from cloud_sync.registry import Authenticator

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_PRICE_CSV_BYTES = 32 * 1024 * 1024


def add_routes(app: web.Application, db_key: web.AppKey[Database], auth_key: web.AppKey[Authenticator]) -> None:
    api = _Api(db_key, auth_key)
    for method, path, handler in (
        ("POST", "/v1/balance/participants", api.add_participant),
        ("GET", "/v1/balance/participants", api.participants),
        ("POST", "/v1/balance/locations", api.add_location),
        ("GET", "/v1/balance/locations", api.locations),
        ("POST", "/v1/balance/groups", api.add_group),
        ("GET", "/v1/balance/groups", api.groups),
        ("POST", "/v1/balance/groups/{group}/members", api.join),
        ("POST", "/v1/balance/groups/{group}/members/{melo}/end", api.leave),
        ("GET", "/v1/balance/groups/{group}/members", api.members),
        ("GET", "/v1/balance/groups/{group}/schedule", api.schedule),
        ("POST", "/v1/balance/prices", api.prices),
        ("POST", "/v1/balance/groups/{group}/runs", api.settle),
        ("GET", "/v1/balance/groups/{group}/runs", api.runs),
        ("GET", "/v1/balance/runs/{run}", api.run),
        ("GET", "/v1/balance/runs/{run}/report", api.report),
    ):
        app.router.add_route(method, path, api.wrap(handler))


def _field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BalanceError(400, f"{name}: got {value!r:.80}, expected {'a string' if kind is str else 'an integer'}")
    return value


def _time(body: dict[str, Any], name: str, required: bool = True) -> int | None:
    text = _field(body, name, str, required)
    if text is None:
        return None
    try:
        return parse_boundary(text, name)
    except TimeError as exc:
        raise BalanceError(400, str(exc)) from None


class _Api:
    def __init__(self, db_key: web.AppKey[Database], auth_key: web.AppKey[Authenticator]) -> None:
        self.db_key, self.auth_key = db_key, auth_key

    def wrap(self, handler: Callable[[web.Request, Database], Awaitable[Any]]) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                who = await request.app[self.auth_key].check(request.headers.get("Authorization"),
                                                             request.remote or "")
                if who.kind != "op":
                    raise BalanceError(403, f"{request.method} {request.path} needs an operator credential")
                result = await handler(request, request.app[self.db_key])
            except BalanceError as exc:
                log.warning("balance_request_refused", path=request.path, status=exc.status, reason=str(exc))
                return web.json_response({"error": str(exc)}, status=exc.status)
            return result if isinstance(result, web.StreamResponse) else web.json_response(
                reports.as_json(result) if isinstance(result, list) else result)

        return wrapped

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BalanceError(400, "body: expected a JSON object") from None
        if not isinstance(body, dict):
            raise BalanceError(400, "body: expected a JSON object")
        return body

    async def add_participant(self, request: web.Request, db: Database) -> Any:
        body = await self._body(request)
        roles = body.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise BalanceError(400, f"roles: got {roles!r:.80}, expected a list such as [\"brp\"]")
        return await registry.add_participant(db, _field(body, "id", str), str(body.get("qualifier", "293")),
                                              _field(body, "name", str), roles)

    async def participants(self, request: web.Request, db: Database) -> Any:
        return await registry.participants(db)

    async def add_location(self, request: web.Request, db: Database) -> Any:
        body = await self._body(request)
        return await registry.add_location(db, _field(body, "melo", str), _field(body, "malo", str, False),
                                           _field(body, "device", str, False),
                                           _field(body, "connection_limit_w", int, False))

    async def locations(self, request: web.Request, db: Database) -> Any:
        return await registry.locations(db)

    async def add_group(self, request: web.Request, db: Database) -> Any:
        body = await self._body(request)
        return await registry.add_group(db, _field(body, "id", str), str(body.get("name") or ""),
                                        _field(body, "brp", str))

    async def groups(self, request: web.Request, db: Database) -> Any:
        return await registry.groups(db)

    async def join(self, request: web.Request, db: Database) -> Any:
        body = await self._body(request)
        start = _time(body, "start")
        assert start is not None
        return await registry.join(db, request.match_info["group"], _field(body, "melo", str), start,
                                   _time(body, "end", False))

    async def leave(self, request: web.Request, db: Database) -> Any:
        end = _time(await self._body(request), "end")
        assert end is not None
        return await registry.leave(db, request.match_info["group"], request.match_info["melo"], end)

    async def members(self, request: web.Request, db: Database) -> Any:
        return await registry.memberships(db, request.match_info["group"])

    async def schedule(self, request: web.Request, db: Database) -> Any:
        day = query_params.day(request.query, "day", error=lambda message: BalanceError(400, message))
        rows = await reports.nomination(db, request.match_info["group"], day)
        return _formatted(rows, request.query.get("format", "json"), ("json", "csv"))

    async def prices(self, request: web.Request, db: Database) -> Any:
        if request.content_length is not None and request.content_length > MAX_PRICE_CSV_BYTES:
            raise BalanceError(413, f"price series: {request.content_length} bytes, at most {MAX_PRICE_CSV_BYTES}")
        try:
            content = (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise BalanceError(400, "price series: the CSV is not UTF-8") from None
        return await runs.upload_prices(db, request.query.get("name", "reBAP"), content)

    async def settle(self, request: web.Request, db: Database) -> Any:
        body = await self._body(request)
        start, end = _time(body, "start"), _time(body, "end")
        assert start is not None and end is not None
        return await runs.settle_group(db, request.match_info["group"], start, end,
                                       str(body.get("prices", "reBAP")), str(body.get("anomalies", "flag")))

    async def runs(self, request: web.Request, db: Database) -> Any:
        return await runs.list_runs(db, request.match_info["group"])

    async def run(self, request: web.Request, db: Database) -> Any:
        run_id = _run_id(request)
        return {**await runs.run_summary(db, run_id), "anomaly_list": await reports.anomalies(db, run_id)}

    async def report(self, request: web.Request, db: Database) -> Any:
        run_id = _run_id(request)
        await runs.run_summary(db, run_id)  # 404 for an unknown run
        rows = await reports.run_rows(db, run_id, request.query.get("by", "slot"))
        return _formatted(rows, request.query.get("format", "json"), reports.FORMATS)


def _run_id(request: web.Request) -> int:
    raw = request.match_info["run"]
    if not raw.isdigit():
        raise BalanceError(400, f"run: got {raw!r:.40}, expected a run number")
    return int(raw)


def _formatted(rows: list[dict[str, Any]], fmt: str, allowed: tuple[str, ...]) -> Any:
    if fmt not in allowed:
        raise BalanceError(400, f"format: got {fmt!r:.40}, allowed: {', '.join(allowed)}")
    if fmt == "csv":
        return web.Response(text=reports.as_csv(rows), content_type="text/csv")
    if fmt == "parquet":
        return web.Response(body=reports.as_parquet(rows), content_type="application/vnd.apache.parquet")
    return rows
