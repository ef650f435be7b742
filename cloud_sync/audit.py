"""The operators' audit log: who did what, when, from where, and how it ended.

Every operator action is one row, appended in the transaction of the action itself where there
is one (registering or revoking a device), so an action and its record commit together. The
table refuses UPDATE and DELETE (a trigger on both SQLite and PostgreSQL, see the migration that
creates it), and this module offers no way to change a row: :func:`record` and :func:`entries`.
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.db import Database
from cloud_sync.schema.operators import audit_log

MAX_TEXT = 200  # a claimed name or a reason is cut here: a hostile login must not fill the log
MAX_ENTRIES = 1000


@dataclass(frozen=True)
class Actor:
    """Who acts (``op:<name>`` for a logged-in or credentialed operator, ``cli:<user>`` for a
    command run on a host with the database's URL) and from where (an address or a host)."""

    who: str
    source: str


def cli_actor(tool: str) -> Actor:
    """The person running a command on this host: ``<tool>:<login name>`` from ``<host>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's numeric user)
        user = "unknown"
    return Actor(f"{tool}:{user}", socket.gethostname())


def process_actor() -> Actor:
    """This process's user, named by its program (``nattery-cloud``, ``nattery-fleet``, …)."""
    return cli_actor(Path(sys.argv[0]).name or "python")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


async def record_in(conn: AsyncConnection, actor: Actor, action: str, target: str | None = None,
                    outcome: str = "ok", detail: dict[str, Any] | None = None, now: float | None = None) -> None:
    """Append one entry inside the caller's transaction on ``conn``."""
    await conn.execute(insert(audit_log).values(
        at=time.time() if now is None else now, actor=_cut(actor.who), action=action,
        target=None if target is None else _cut(target), source=_cut(actor.source), outcome=_cut(outcome),
        detail=None if detail is None else json.dumps(detail, sort_keys=True),
    ))


async def record(db: Database, actor: Actor, action: str, target: str | None = None, outcome: str = "ok",
                 detail: dict[str, Any] | None = None) -> None:
    """Append one entry in a transaction of its own."""
    async with db.begin() as conn:
        await record_in(conn, actor, action, target, outcome, detail)


async def entries(db: Database, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` entries (older than ``before_id`` when given), newest first."""
    a = audit_log.c
    async with db.read() as conn:
        rows = (await conn.execute(
            select(a.id, a.at, a.actor, a.action, a.target, a.source, a.outcome, a.detail)
            .where(*([] if before_id is None else [a.id < before_id]))
            .order_by(a.id.desc()).limit(min(limit, MAX_ENTRIES)))).all()
    return [
        {"id": int(i), "at": float(at), "actor": actor, "action": action, "target": target, "source": source,
         "outcome": outcome, "detail": None if detail is None else json.loads(detail)}
        for i, at, actor, action, target, source, outcome, detail in rows
    ]
