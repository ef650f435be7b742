"""The operator page at the aggregator (``/ops/``): the fleet at a glance, one device's detail, the
fleet's price-forecast accuracy, data quality and the audit log, behind an operator login.

It is a sub-application with its own middlewares (error pages, security headers, sessions, CSRF),
so the JSON API's behaviour is untouched; it reads the parent application's database and
authenticator through the keys handed to :func:`add_routes`. It also adds ``POST /v1/audit`` to
the JSON API, where the fleet tool records the actions it takes through Balena.
"""

from __future__ import annotations

from aiohttp import web

from cloud_sync.db import Database
from cloud_sync.operator_web import api_audit, app as ops_app
from cloud_sync.operator_web.keys import Links
from cloud_sync.registry import Authenticator

PREFIX = "/ops"


def add_routes(app: web.Application, db: web.AppKey[Database], auth: web.AppKey[Authenticator]) -> None:
    """Mount the operator page at ``/ops/`` and the audit endpoint on ``app``."""
    links = Links(db, auth)
    app.add_subapp(PREFIX + "/", ops_app.create(links))
    app.router.add_get(PREFIX, ops_app.to_front)
    api_audit.add_routes(app, links)
