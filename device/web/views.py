"""Server-rendered pages and their forms (post → redirect → get, with a one-time message).

Every page works without JavaScript; ``static/app.js`` adds live values, the price chart and
the power-flow animation on top.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from device.config import PlannerSettings
from device.prices.tariff import Tariff
from device.web import actions, describe, explain, health_view, history, model
from device.web.actions import Actor
from device.store import Reading, Store
from device.web.access import guard, locale, set_session_cookie
from device.web.keys import (
    CFG, COOKIE, DEPS, LANG_COOKIE, LATE_AFTER, LIVE, SESSION, SESSIONS, TEMPLATES, TZ,
)
from device.web.i18n import LANGUAGES
from device.web.inputs import ActionError, form_number
from device.web.live import close_quietly, snapshot, sse_event
from device.web.login import attempt_login, change_password
from device.home.settings import EDITABLE

NAV = (("/", "nav_overview"), ("/prices", "nav_prices"), ("/history", "nav_history"), ("/savings", "nav_savings"),
       ("/settings", "nav_settings"))
#: The standing modes offered as radio buttons; "manual" is not one of them: a manual operation is
#: started with its own form and shown in place of the mode while it runs.
MODES = tuple(m for m in next(f.metadata["choices"] for f in dataclasses.fields(PlannerSettings) if f.name == "mode")
              if m != "manual")


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    session = request[SESSION]
    flash, session.flash = session.flash, None
    static = request.app.router["static"]
    page = request.app[TEMPLATES].get_template(template).render(
        L=locale(request),
        session=session,
        path=request.path,
        nav=NAV,
        flash=flash,
        alerts=active_alerts(request) if session.role else [],
        languages=LANGUAGES,
        static=lambda name: str(static.url_for(filename=name)),
        **context,
    )
    response = web.Response(text=page, status=status, content_type="text/html")
    response.enable_compression()  # only when the browser accepts it; pages shrink ~5x
    return response


def active_alerts(request: web.Request) -> list[dict[str, Any]]:
    """The device's active alerts (:mod:`device.alerting`), for the banner of every page."""
    source = request.app[DEPS].health.get("alerts")
    return list(source.health().get("active", [])) if source is not None else []


def actor(request: web.Request) -> Actor:
    return Actor(request[SESSION].role or "anonymous", request.app[CFG], request.app[DEPS])


def redirect(request: web.Request, to: str, kind: str, message: str) -> web.HTTPSeeOther:
    request[SESSION].flash = (kind, message)
    return web.HTTPSeeOther(to)


async def overview(request: web.Request) -> web.Response:
    session = guard(request, public=True)
    deps = request.app[DEPS]
    live = snapshot(deps.telemetry.latest(), deps.telemetry.online(), with_registers=False, now=deps.clock())
    now = deps.clock()
    override = deps.settings.override(now)
    glance = await model.today_at_a_glance(deps.store, deps.settings.config, request.app[TZ], now)
    why = explain.reason(glance["action"], override, now, locale(request))
    return render(request, "overview.html", live=live, read_only=session.role is None,
                  mode=deps.settings.config.planner.mode, override=override, glance=glance, why=why)


async def prices(request: web.Request) -> web.Response:
    guard(request)
    data = await model.prices_and_plan(
        request.app[DEPS].store, request.app[CFG].prices.zone, request.app[TZ], request.app[DEPS].clock(), request.app[LATE_AFTER],
        Tariff(request.app[DEPS].settings.config.tariff, request.app[CFG].device.timezone),
    )
    return render(request, "prices.html", data=data)


async def savings(request: web.Request) -> web.Response:
    guard(request)
    return render(request, "savings.html", data=await model.savings(request.app[DEPS].store, request.app[TZ], request.app[DEPS].clock()))


def _history_query(request: web.Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    try:
        return history.parse_query(request.query, allowed, model.local_today(request.app[TZ], request.app[DEPS].clock()))
    except ActionError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None


async def history_page(request: web.Request) -> web.Response:
    guard(request)
    query = _history_query(request, ("period", "date"))
    period = history.Period.containing(query["period"], query["date"])
    tz = request.app[TZ]
    data = await history.history(request.app[DEPS].store, period, tz)
    L = locale(request)
    title = {"day": "%d.%m.%Y" if L.lang == "de" else "%Y-%m-%d", "week": "%G-W%V", "month": "%m/%Y", "year": "%Y"}
    charts = [("energy_chart", history.chart(data["bars"], history.ENERGY_KEYS), history.ENERGY_KEYS),
              ("money_chart", history.chart(data["bars"], history.MONEY_KEYS[:2]), history.MONEY_KEYS[:2])]
    return render(request, "history.html", data=data, periods=history.PERIODS, day=period.first.isoformat(),
                  prev=period.step(-1).first.isoformat(), next=period.step(1).first.isoformat(),
                  title=period.first.strftime(title[period.kind]), charts=charts,
                  energy_keys=history.ENERGY_KEYS, month=period.first.isoformat()[:7])


async def history_csv(request: web.Request) -> web.Response:
    guard(request)
    query = _history_query(request, ("period", "date"))
    period = history.Period.containing(query["period"], query["date"])
    data = await history.history(request.app[DEPS].store, period, request.app[TZ])
    name = f"nattery-{period.kind}-{period.first.isoformat()}.csv"
    return web.Response(text=history.to_csv(data, request.app[TZ]), content_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def history_report(request: web.Request) -> web.Response:
    guard(request)
    month = _history_query(request, ("month",))["month"]
    data = await history.monthly_report(request.app[DEPS].store, month, request.app[TZ])
    return render(request, "report.html", data=data, energy_keys=history.ENERGY_KEYS)


async def settings_page(request: web.Request) -> web.Response:
    guard(request)
    settings = request.app[DEPS].settings
    effective = settings.config
    return render(
        request, "settings.html", modes=MODES, mode=effective.planner.mode, reserve=effective.battery.reserve_pct,
        tariff=effective.tariff, tariff_keys=EDITABLE["tariff"], override=settings.override(request.app[DEPS].clock()),
        limits=actions.power_limits(effective), now=request.app[DEPS].clock(),
    )


def _tariff_value(key: str, text: str) -> Any:
    """The form shows ct/kWh (as on the bill); configuration keeps EUR/MWh (× 10)."""
    if key == "export":
        return text
    value = form_number(text, f"tariff.{key}")
    if key.endswith("_eur_mwh") and isinstance(value, float):
        return round(value * 10, 6)
    return value


async def settings_post(request: web.Request) -> web.Response:
    """Apply one form; the message says what changed and when it takes effect."""
    guard(request)
    form = await request.post()
    L = locale(request)
    settings = request.app[DEPS].settings
    before = settings.config
    try:
        form_kind = form.get("form")
        if form_kind == "mode":
            changes: dict[str, dict[str, Any]] = {
                "battery": {"reserve_pct": form_number(str(form.get("reserve_pct", "")), "battery.reserve_pct")}}
            mode = str(form.get("mode", ""))
            if mode != before.planner.mode:  # only a new mode ends a running manual operation
                changes["planner"] = {"mode": mode}
            await actions.change_settings(actor(request), changes)
            message = describe.settings_saved(before, settings.config, L)
        elif form_kind == "tariff":
            values = {key: _tariff_value(key, str(form[key])) for key in EDITABLE["tariff"] if key in form}
            await actions.change_settings(actor(request), {"tariff": values})
            message = describe.settings_saved(before, settings.config, L)
        elif form_kind == "manual":
            override = await actions.start_manual(actor(request), form.get("action"), form.get("power_w"), form.get("until"))
            message = describe.manual_started(override, settings.config.planner.mode, L)
        elif form_kind == "manual_stop":
            await actions.stop_manual(actor(request))
            message = describe.manual_stopped(settings.config.planner.mode, L)
        else:
            raise ActionError(f"form: got {form_kind!r}, allowed: mode, tariff, manual, manual_stop", "form")
    except ActionError as exc:
        raise redirect(request, "/settings", "error", str(exc)) from None
    raise redirect(request, "/settings", "ok", message)


async def installer(request: web.Request) -> web.Response:
    guard(request, "installer")
    deps = request.app[DEPS]
    reading = deps.telemetry.latest()
    health = await model.health(deps.store, deps.health, {"live_clients": request.app[LIVE].clients})
    events = await deps.store.call(Store.events, 30)
    edi_files = await deps.store.call(Store.recent_edi_files, 20)
    return render(
        request, "installer.html", registers=model.registers(deps.regmap, reading), regmap=deps.regmap,
        selected=request.query.get("name", ""),
        health=health_view.summary(health, deps.clock(), locale(request)),
        health_raw={name: json.dumps(values, indent=2, default=str) for name, values in health.items()},
        events=events,
        edi_files=edi_files, market=deps.settings.config.market,
        live_data=live_snapshot(request, reading, with_registers=True),
    )


async def register_post(request: web.Request) -> web.Response:
    """Read now, or write after a confirmation page (the first post without ``confirm`` asks)."""
    guard(request, "installer")
    form = await request.post()
    name, op = form.get("name"), form.get("op")
    try:
        if op == "read":
            result = await actions.read_register(actor(request), name)
            raise redirect(request, _back_to_form(name), "ok", f"{result['name']} = {result['value']} {result['unit']}")
        if op != "write":
            raise ActionError(f"op: got {op!r}, allowed: read, write", "op")
        if form.get("confirm") != "yes":
            reg = actions.find_register(actor(request), name, writing=True)
            value = actions.parse_value(reg, form.get("value"))
            return render(request, "confirm.html", register=reg, value=value)
        result = await actions.write_register(actor(request), name, form.get("value"))
    except ActionError as exc:
        raise redirect(request, _back_to_form(name), "error", str(exc)) from None
    raise redirect(request, _back_to_form(name), "ok",
                   f"{result['name']} ← {result['value']:g} {result['unit']} ({result['applied_at']})")


def _back_to_form(name: object) -> str:
    """The installer page scrolled to the register form, the register still chosen (the result
    is shown right below the form, where the installer is looking)."""
    return "/installer?" + urlencode({"name": name if isinstance(name, str) else ""}) + "#register-form"


#: A same-site path: "/" then printable ASCII without spaces or backslashes, never "//" (which a
#: browser reads as another host). Browsers drop tabs and line breaks from URLs, so "/\t/evil"
#: must not pass either: anything outside this set sends the visitor to "/".
_SAME_SITE_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*")


def _safe_next(value: object) -> str:
    text = value if isinstance(value, str) else "/"
    return text if _SAME_SITE_PATH.fullmatch(text) else "/"


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", next=_safe_next(request.query.get("next")), error=None)


async def login_post(request: web.Request) -> web.Response:
    form = await request.post()
    L = locale(request)
    try:
        session = await attempt_login(request, form.get("account"), form.get("password"))
    except ActionError as exc:
        message = L.t("login_limited", s=str(exc).rsplit(" ", 2)[-2]) if exc.status == 429 else L.t("login_failed")
        if exc.status == 400:
            message = str(exc)
        return render(request, "login.html", status=exc.status, next=_safe_next(form.get("next")), error=message)
    raise web.HTTPSeeOther("/password" if session.must_change else _safe_next(form.get("next")))


async def logout_post(request: web.Request) -> web.Response:
    await request.app[SESSIONS].drop(request[SESSION])
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def password_page(request: web.Request) -> web.Response:
    if request[SESSION].role is None:
        raise web.HTTPSeeOther("/login")
    return render(request, "password.html", error=None)


async def password_post(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        await change_password(request, form.get("old_password"), form.get("new_password"), form.get("repeat_password"))
    except ActionError as exc:
        if exc.status == 401:
            raise web.HTTPSeeOther("/login") from None
        return render(request, "password.html", status=400, error=str(exc))
    raise redirect(request, "/", "ok", locale(request).t("saved"))


async def language(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    if code not in LANGUAGES:
        raise web.HTTPNotFound(text=f"language: got {code!r}, allowed: {', '.join(LANGUAGES)}")
    response = web.HTTPSeeOther(_safe_next(request.query.get("next")))
    response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="Strict", path="/")
    raise response


def live_snapshot(request: web.Request, reading: Reading | None, with_registers: bool) -> dict[str, Any]:
    """The SSE payload; installers also get every register's value and raw number."""
    deps = request.app[DEPS]
    data = snapshot(reading, deps.telemetry.online(), with_registers, deps.clock())
    if with_registers:
        data["raw"] = {row["name"]: row["raw"] for row in model.registers(deps.regmap, reading)}
    return data


async def live(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``telemetry`` on every new reading (registers for installers only)."""
    session = guard(request, public=True)
    deps = request.app[DEPS]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    set_session_cookie(request, response)
    await response.prepare(request)
    with_registers = session.is_installer and request.query.get("registers") == "1"
    await response.write(sse_event("telemetry", live_snapshot(request, deps.telemetry.latest(), with_registers)))
    updates = request.app[LIVE].subscribe()
    try:
        async for reading in updates:
            if reading is None:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(sse_event("telemetry", live_snapshot(request, reading, with_registers)))
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        await close_quietly(updates)
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/", overview)
    app.router.add_get("/prices", prices)
    app.router.add_get("/savings", savings)
    app.router.add_get("/history", history_page)
    app.router.add_get("/history.csv", history_csv)
    app.router.add_get("/history/report", history_report)
    app.router.add_get("/settings", settings_page)
    app.router.add_post("/settings", settings_post)
    app.router.add_get("/installer", installer)
    app.router.add_post("/installer/register", register_post)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout_post)
    app.router.add_get("/password", password_page)
    app.router.add_post("/password", password_post)
    app.router.add_get("/lang/{code}", language)
    app.router.add_get("/live", live)
