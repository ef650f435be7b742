"""Typed keys of the operator page's state and requests, and the accessors handlers use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2
from aiohttp import web

from cloud_sync.db import Database
from cloud_sync.operator_web.sessions import OperatorSessions, Session
from cloud_sync.registry import Authenticator

HERE = Path(__file__).parent
COOKIE = "nattery_ops_session"


@dataclass(frozen=True)
class Links:
    """Where the parent application keeps what the page reads."""

    db: web.AppKey[Database]
    auth: web.AppKey[Authenticator]


@dataclass
class State:
    """Made on first use: the parent's database exists only once the application started."""

    sessions: OperatorSessions | None = None
    templates: jinja2.Environment | None = None  # see cloud_sync.operator_web.render


LINKS = web.AppKey("ops_links", Links)
STATE = web.AppKey("ops_state", State)
SESSION = web.RequestKey("ops_session", Session)
FRESH_SESSION = web.RequestKey("ops_fresh_session", bool)


def db(request: web.Request) -> Database:
    return request.config_dict[request.app[LINKS].db]


def authenticator(request: web.Request) -> Authenticator:
    return request.config_dict[request.app[LINKS].auth]


def sessions(request: web.Request) -> OperatorSessions:
    state = request.app[STATE]
    if state.sessions is None:
        state.sessions = OperatorSessions(db(request))
    return state.sessions
