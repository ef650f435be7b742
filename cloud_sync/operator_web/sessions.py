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

from cloud_sync.db import Database
from common.web_security import anonymous_session, new_session_id, session_key

LIFETIME_S = 8 * 3600.0  # a working day
ANONYMOUS_LIFETIME_S = 3600.0


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
            async with self.db.transaction() as tx:
                await tx.execute("INSERT INTO operator_web_keys (name, value) VALUES ('anonymous_csrf', $1)"
                                 " ON CONFLICT (name) DO NOTHING", fresh)
                row = await tx.fetchrow("SELECT value FROM operator_web_keys WHERE name = 'anonymous_csrf'")
            assert row is not None
            self._key = base64.b64decode(row[0])
        return self._key

    async def lookup(self, session_id: str | None, now: float | None = None) -> Session:
        """The visitor's logged-in session, else its anonymous one (a new id when it has none)."""
        now = time.time() if now is None else now
        if session_id:
            async with self.db.transaction(readonly=True) as tx:
                row = await tx.fetchrow(
                    "SELECT s.operator, s.csrf, s.expires_at FROM operator_sessions s"
                    " JOIN operators o ON o.name = s.operator"
                    " WHERE s.key = $1 AND s.expires_at > $2 AND o.revoked_at IS NULL",
                    session_key(session_id), now)
            if row is not None:
                return Session(session_id, str(row[1]), float(row[2]), str(row[0]))
        sid, csrf = anonymous_session(await self._anonymous_key(), session_id)
        return Session(sid, csrf, now + ANONYMOUS_LIFETIME_S)

    async def start(self, operator: str, now: float | None = None) -> Session:
        """A new logged-in session (a new id: no session fixation); expired ones are swept."""
        now = time.time() if now is None else now
        session = Session(new_session_id(), secrets.token_urlsafe(32), now + self.lifetime_s, operator)
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM operator_sessions WHERE expires_at <= $1", now)
            await tx.execute(
                "INSERT INTO operator_sessions (key, operator, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                session_key(session.id), operator, session.csrf, now, session.expires)
        return session

    async def end(self, session: Session) -> None:
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM operator_sessions WHERE key = $1", session_key(session.id))
