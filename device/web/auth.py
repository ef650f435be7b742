"""Who is logged in: sessions, CSRF tokens and login limits (the accounts are in
:mod:`device.home.accounts`).

Logged-in sessions are kept in the store as well (by the SHA-256 of their id, never the id
itself), so an app restart (every update) logs nobody out; they expire, and a password change ends
the account's other sessions (a password set elsewhere, at hand-over, ends them all at the next
start). Every visitor has a session (anonymous until login) so the login form is CSRF-protected
like everything else; login rotates the session id. Anonymous sessions are not stored: their CSRF
token is derived from the cookie's id, so requests without a cookie, however many, cost no memory.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from common.web_security import anonymous_session, new_session_id, session_key
from device.store import AsyncStore, Store


@dataclass
class Session:
    id: str  # the cookie value; "" for a session restored from the store until its visitor returns
    csrf: str
    expires: float
    role: str | None = None
    must_change: bool = False
    flash: tuple[str, str] | None = None  # (kind "ok"|"error", message) shown once after a redirect
    password: str = ""  # fingerprint of the account's password when the session began

    @property
    def is_installer(self) -> bool:
        return self.role == "installer"


ANONYMOUS_LIFETIME_S = 3600  # the anonymous cookie's lifetime


class Sessions:
    """Logged-in sessions keyed by the hash of a random id (the cookie value), written through to
    ``store`` when given (:meth:`restore` reads them back after a restart), and anonymous ones
    derived from the cookie's id (see :meth:`anonymous`)."""

    def __init__(
        self, lifetime_s: float, store: AsyncStore | None = None, anonymous_lifetime_s: float = ANONYMOUS_LIFETIME_S
    ) -> None:
        self.lifetime_s = lifetime_s
        self.store = store
        self.anonymous_lifetime_s = anonymous_lifetime_s
        self._by_key: dict[str, Session] = {}
        self._key = secrets.token_bytes(32)

    def anonymous(self, session_id: str | None) -> Session:
        """The visitor's anonymous session: for a well-formed id the same one every time (its
        CSRF token is an HMAC of the id under a key made at start), else one with a new id.
        Nothing is stored; the id is only as secret as the HttpOnly cookie that carries it."""
        session_id, csrf = anonymous_session(self._key, session_id)
        return Session(session_id, csrf, time.time() + self.anonymous_lifetime_s)

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, session_id: str | None, now: float | None = None) -> Session | None:
        if not session_id:
            return None
        session = self._by_key.get(session_key(session_id))
        if session is not None and session.expires > (time.time() if now is None else now):
            session.id = session_id
            return session
        return None

    async def new(self, role: str | None = None, must_change: bool = False, password: str = "") -> Session:
        session = Session(new_session_id(), secrets.token_urlsafe(32), time.time() + self.lifetime_s,
                          role, must_change, password=password)
        self._by_key[session_key(session.id)] = session
        await self.save(session)
        return session

    async def save(self, session: Session) -> None:
        """Write a changed logged-in session through to the store."""
        if self.store is not None and session.role is not None:
            await self.store.call(Store.save_web_session, {
                "key": session_key(session.id), "csrf": session.csrf, "role": session.role,
                "must_change": int(session.must_change), "password": session.password, "expires": session.expires,
            })

    async def restore(self, valid: Callable[[str, str], bool], now: float | None = None) -> int:
        """Read the stored sessions back; those ``valid(role, password)`` refuses are deleted.
        Returns how many were restored."""
        if self.store is None:
            return 0
        rows = await self.store.call(Store.web_sessions, time.time() if now is None else now)
        stale = [r["key"] for r in rows if not valid(r["role"], r["password"])]
        await self.store.call(Store.delete_web_sessions, stale)
        for r in rows:
            if r["key"] not in stale:
                self._by_key[r["key"]] = Session("", r["csrf"], r["expires"], r["role"], bool(r["must_change"]),
                                                 password=r["password"])
        return len(rows) - len(stale)

    async def drop(self, session: Session) -> None:
        await self._delete([key for key, s in self._by_key.items() if s is session])

    async def drop_role(self, role: str, keep: Session | None = None) -> None:
        """After a password change, other logins of that account end."""
        await self._delete([key for key, s in self._by_key.items() if s.role == role and s is not keep])

    async def _delete(self, keys: list[str]) -> None:
        for key in keys:
            del self._by_key[key]
        if self.store is not None and keys:
            await self.store.call(Store.delete_web_sessions, keys)

    async def sweep(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        expired = [key for key, s in self._by_key.items() if s.expires <= now]
        for key in expired:
            del self._by_key[key]
        if self.store is not None:
            await self.store.call(Store.prune_web_sessions, now)
        return len(expired)


class LoginLimiter:
    """At most ``max_failures`` password guesses per client address and per account in ``window_s``.

    An attempt is counted when it starts, before its password is checked (scrypt takes tens of
    milliseconds in a thread): otherwise any number of parallel attempts pass the check together.
    A success forgets its keys. Keys without attempts in the window are swept, and at most
    ``max_keys`` are kept (the oldest go first; the account keys, used by every attempt, stay).
    """

    def __init__(self, max_failures: int, window_s: float, max_keys: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._attempts: OrderedDict[str, deque[float]] = OrderedDict()

    def attempt(self, keys: list[str], now: float | None = None) -> float:
        """Count an attempt now and return 0, or return the seconds to wait (nothing counted)."""
        now = time.time() if now is None else now
        wait = 0.0
        for key in keys:
            times = self._attempts.get(key)
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if times is not None and len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        if wait > 0:
            return wait
        for key in keys:
            self._attempts.setdefault(key, deque()).append(now)
            self._attempts.move_to_end(key)
        while len(self._attempts) > self.max_keys:
            self._attempts.popitem(last=False)
        return 0.0

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._attempts.pop(key, None)

    def sweep(self, now: float | None = None) -> int:
        """Forget keys whose attempts are all older than the window; returns how many went."""
        cutoff = (time.time() if now is None else now) - self.window_s
        old = [key for key, times in self._attempts.items() if not times or times[-1] <= cutoff]
        for key in old:
            del self._attempts[key]
        return len(old)

    def __len__(self) -> int:
        return len(self._attempts)
