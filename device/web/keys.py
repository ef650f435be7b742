"""Typed keys of the web application's state and of each request, and the cookie names.

Own module so that the handlers (:mod:`~device.web.api`, :mod:`~device.web.views`,
:mod:`~device.web.login`) and :mod:`~device.web.app`, which builds the application from them,
import these without importing each other.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from device.config import Config
from device.home.accounts import Users
from device.web.auth import LoginLimiter, Session, Sessions
from device.web.deps import WebDeps
from device.web.live import LiveHub

COOKIE = "nattery_session"
LANG_COOKIE = "nattery_lang"

CFG = web.AppKey("cfg", Config)
DEPS = web.AppKey("deps", WebDeps)
USERS = web.AppKey("users", Users)
SESSIONS = web.AppKey("sessions", Sessions)
LIMITER = web.AppKey("limiter", LoginLimiter)
LIVE = web.AppKey("live", LiveHub)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
TZ = web.AppKey("tz", ZoneInfo)
LATE_AFTER = web.AppKey("late_after", tuple)
STARTED = web.AppKey("started", float)

SESSION = web.RequestKey("session", Session)
FRESH_SESSION = web.RequestKey("fresh_session", bool)
