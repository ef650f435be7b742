"""Operators' sessions on the operator page, kept in the database so that any aggregator instance
behind a load balancer serves them (and a restart logs nobody out).

The session and CSRF mechanics are the device page's (:mod:`common.web_security`): a logged-in
session is stored by the SHA-256 of its cookie value with its own random CSRF token; an anonymous
visitor's token is an HMAC of its cookie id under a key every instance reads from the database
(created by the first instance that needs it). A revoked operator's sessions end at once: each
lookup checks the operator's row.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select

from cloud_sync.db import Database
from cloud_sync.schema.operators import operator_sessions, operator_web_keys
from cloud_sync.schema.sync import operators
from common.web_security import anonymous_session, new_session_id, session_key

LIFETIME_S = 8 * 3600.0  # a working day
ANONYMOUS_LIFETIME_S = 3600.0
_ANONYMOUS_KEY = "anonymous_csrf"  # operator_web_keys.name of the anonymous visitors' CSRF key


@dataclass
class Session:
    id: str
    csrf: str
    expires: float
    operator: str | None = None  # None: anonymous


class OperatorSessions:
    def __init__(self, db: Database, lifetime_s: float = LIFETIME_S) -> None:
        self.db = db
        self.lifetime_s = lifetime_s
        self._key: bytes | None = None

    async def _anonymous_key(self) -> bytes:
        if self._key is None:
            fresh = base64.b64encode(secrets.token_bytes(32)).decode()
            keys = operator_web_keys.c
            async with self.db.begin() as conn:
                await conn.execute(self.db.upsert(operator_web_keys).values(name=_ANONYMOUS_KEY, value=fresh)
                                   .on_conflict_do_nothing(index_elements=[keys.name]))
                value = (await conn.execute(select(keys.value).where(keys.name == _ANONYMOUS_KEY))).scalar_one()
            self._key = base64.b64decode(value)
        return self._key

    async def lookup(self, session_id: str | None, now: float | None = None) -> Session:
        """The visitor's logged-in session, else its anonymous one (a new id when it has none)."""
        now = time.time() if now is None else now
        if session_id:
            s, o = operator_sessions.c, operators.c
            async with self.db.read() as conn:
                row = (await conn.execute(
                    select(s.operator, s.csrf, s.expires_at).join_from(operator_sessions, operators, o.name == s.operator)
                    .where(s.key == session_key(session_id), s.expires_at > now, o.revoked_at.is_(None)))).first()
            if row is not None:
                return Session(session_id, str(row[1]), float(row[2]), str(row[0]))
        sid, csrf = anonymous_session(await self._anonymous_key(), session_id)
        return Session(sid, csrf, now + ANONYMOUS_LIFETIME_S)

    async def start(self, operator: str, now: float | None = None) -> Session:
        """A new logged-in session (a new id: no session fixation); expired ones are swept."""
        now = time.time() if now is None else now
        session = Session(new_session_id(), secrets.token_urlsafe(32), now + self.lifetime_s, operator)
        s = operator_sessions.c
        async with self.db.begin() as conn:
            await conn.execute(delete(operator_sessions).where(s.expires_at <= now))
            await conn.execute(insert(operator_sessions).values(
                key=session_key(session.id), operator=operator, csrf=session.csrf, created_at=now,
                expires_at=session.expires))
        return session

    async def end(self, session: Session) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(operator_sessions).where(operator_sessions.c.key == session_key(session.id)))
