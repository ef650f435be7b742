"""The operator page's handlers: each reads what it shows through the aggregator's query modules
and renders one template; forms post, then redirect (post → redirect → get)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from cloud_sync import audit, data_quality, device_documents, forecast_accuracy, queries, query_params, registry
from cloud_sync.alerting import with_alerts
from cloud_sync.balance import registry as balance_registry
from cloud_sync.balance import reports as balance_reports
from cloud_sync.balance import runs as balance_runs
from cloud_sync.balance.registry import BalanceError
from cloud_sync.operator_web.keys import SESSION, db
from cloud_sync.operator_web.login import log_in, log_out
from cloud_sync.operator_web.render import PageError, render
from common.sync_protocol import DEVICE_ID

MAX_DAYS = 90


def setup(app: web.Application) -> None:
    router = app.router
    router.add_get("/", fleet)
    router.add_get("/login", login_form)
    router.add_post("/login", log_in)
    router.add_post("/logout", log_out)
    router.add_get("/devices/{device}", device_page)
    router.add_post("/devices/{device}/revoke", revoke_device)
    router.add_get("/forecasts", forecasts)
    router.add_get("/quality", quality)
    router.add_get("/audit", audit_log)
    router.add_get("/settlement", settlement)
    router.add_get("/settlement/{run}", settlement_run)
    router.add_route("*", "/{tail:.*}", not_found)


def operator(request: web.Request) -> audit.Actor:
    """The logged-in operator as the audit log names them; a visitor goes to the login form."""
    name = request[SESSION].operator
    if name is None:
        raise web.HTTPSeeOther("/ops/login")
    return audit.Actor(f"op:{name}", request.remote or "")


def form_query(request: web.Request) -> dict[str, str]:
    """The query string without its empty fields: a form's field left empty means "not given"."""
    return {name: value for name, value in request.query.items() if value != ""}


def bad_request(message: str) -> PageError:
    return PageError(400, message)


def days_query(request: web.Request) -> int:
    return query_params.integer(form_query(request), "days", error=bad_request, default=7, low=1, high=MAX_DAYS)


async def login_form(request: web.Request) -> web.Response:
    if request[SESSION].operator is not None:
        raise web.HTTPSeeOther("/ops/")
    return render(request, "login.html", error=None)


async def fleet(request: web.Request) -> web.Response:
    operator(request)
    devices = with_alerts(await queries.devices(db(request)))
    active = [d for d in devices if not d["revoked"]]
    summary = {
        "registered": len(active),
        "online": sum(1 for d in active if d["online"]),
        "alerting": sum(1 for d in active if d["alerts"]),
        "savings_month_eur": sum(d["savings_month_eur"] or 0.0 for d in active),
    }
    return render(request, "fleet.html", devices=devices, summary=summary)


async def device_page(request: web.Request) -> web.Response:
    operator(request)
    device = request.match_info["device"]
    found = await queries.devices(db(request), only=device) if DEVICE_ID.match(device) else []
    if not found:
        raise PageError(404, f"no device {device[:80]!r} is registered at this aggregator")
    row = with_alerts(found)[0]
    now = time.time()
    return render(
        request, "device.html", device=row,
        roles=sorted(((row["latest_telemetry"] or {}).get("roles") or {}).items()),
        days=await device_documents.settled_days(db(request), device, now - 7 * 86_400),
        energy=await queries.daily_energy(db(request), device, *_last_week(now), "UTC"),
        edi=await device_documents.edi_files(db(request), device),
        schedules=await device_documents.schedules(db(request), device, now - 7 * 86_400),
        quality=(await data_quality.quality(db(request), now, 7, only=device))[0],
    )


def _last_week(now: float) -> tuple[date, date]:
    today = datetime.fromtimestamp(now, UTC).date()
    return today - timedelta(days=6), today


async def revoke_device(request: web.Request) -> web.StreamResponse:
    actor = operator(request)
    device = request.match_info["device"]
    try:
        await registry.revoke(db(request), "dev", device, actor)
    except registry.RegistryError as exc:
        raise PageError(404, str(exc)) from None
    raise web.HTTPSeeOther(f"/ops/devices/{device}")


async def forecasts(request: web.Request) -> web.Response:
    operator(request)
    days = days_query(request)
    rows = await forecast_accuracy.accuracy(db(request), time.time(), days)
    return render(request, "forecasts.html", rows=rows, days=days)


async def quality(request: web.Request) -> web.Response:
    operator(request)
    days = days_query(request)
    return render(request, "quality.html", rows=await data_quality.quality(db(request), time.time(), days), days=days)


async def audit_log(request: web.Request) -> web.Response:
    operator(request)
    query = form_query(request)
    before = query_params.integer(query, "before", error=bad_request, low=1, high=2**62) if "before" in query else None
    entries = await audit.entries(db(request), 100, before)
    older = entries[-1]["id"] if len(entries) == 100 else None
    return render(request, "audit.html", entries=entries, older=older)


async def settlement(request: web.Request) -> web.Response:
    operator(request)
    groups = [{**g, "runs": await balance_runs.list_runs(db(request), g["id"])}
              for g in await balance_registry.groups(db(request))]
    return render(request, "settlement.html", groups=groups)


async def settlement_run(request: web.Request) -> web.Response:
    operator(request)
    raw = request.match_info["run"]
    try:
        run = await balance_runs.run_summary(db(request), int(raw)) if raw.isdigit() else None
    except BalanceError:
        run = None
    if run is None:
        raise PageError(404, f"no settlement run {raw[:40]!r}")
    members = await balance_reports.run_rows(db(request), run["run"], "member")
    members.sort(key=lambda m: abs(m["deviation_kwh"]), reverse=True)
    return render(request, "settlement_run.html", run=run, members=members[:20],
                  slots=await balance_reports.run_rows(db(request), run["run"], "slot"),
                  anomalies=await balance_reports.anomalies(db(request), run["run"]))


async def not_found(request: web.Request) -> web.Response:
    raise PageError(404, f"no page at {request.path[:120]}")
