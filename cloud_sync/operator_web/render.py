"""Rendering pages: the templates' shared context and how values are shown.

A value the aggregator does not know is shown as "–", never as "None" or "nan": every number,
time and age goes through :func:`number`, :func:`when` or :func:`age`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web

from cloud_sync.operator_web.keys import HERE, SESSION, STATE
from common.numbers import finite_float
from common.utc import parse_utc

UNKNOWN = "–"
NAV = (("/ops/", "Fleet"), ("/ops/forecasts", "Forecast accuracy"), ("/ops/quality", "Data quality"),
       ("/ops/settlement", "Settlement"), ("/ops/audit", "Audit log"))


class PageError(Exception):
    """A request the page refuses: ``status`` (400, 404, …) and a message naming what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def number(value: Any, digits: int = 1, unit: str = "") -> str:
    if (figure := finite_float(value)) is None:
        return UNKNOWN
    text = f"{figure:,.{digits}f}"
    return f"{text} {unit}" if unit else text


def when(value: Any) -> str:
    """An epoch time or an ISO text as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if isinstance(value, str):
        try:
            value = parse_utc(value)
        except ValueError:
            return UNKNOWN
    if (ts := finite_float(value)) is not None:
        try:
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):
            return UNKNOWN
    return UNKNOWN


def age(seconds: Any) -> str:
    """How long ago, in the largest sensible unit."""
    if (seconds := finite_float(seconds)) is None:
        return UNKNOWN
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def text(value: Any) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    state = request.app[STATE]
    if state.templates is None:
        state.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                                             undefined=jinja2.StrictUndefined)
        state.templates.filters.update(number=number, when=when, age=age, text=text)
    env = state.templates
    session = request.get(SESSION)
    static = request.app.router["static"]
    page = env.get_template(template).render(
        session=session, path=request.path, nav=NAV,
        static=lambda name: str(static.url_for(filename=name)), **context)
    return web.Response(text=page, status=status, content_type="text/html")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    titles = {400: "Bad request", 403: "Refused", 404: "Not found", 405: "Not allowed", 429: "Too many attempts",
              500: "Internal error"}
    return render(request, "error.html", status=status, title=titles.get(status, f"Error {status}"),
                  message=message)
