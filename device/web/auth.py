"""Who is logged in: sessions, CSRF tokens and login limits (the accounts are in
:mod:`device.home.accounts`).

Sessions live in memory: a restart logs everyone out, which is acceptable for a LAN appliance
and means no session secret sits on the SD card. Every visitor has a session (anonymous until
login) so the login form is CSRF-protected like everything else; login rotates the session id.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass

@dataclass
class Session:
    id: str
    csrf: str
    expires: float
    role: str | None = None
    must_change: bool = False
    flash: tuple[str, str] | None = None  # (kind "ok"|"error", message) shown once after a redirect

    @property
    def is_installer(self) -> bool:
        return self.role == "installer"


class Sessions:
    """In-memory sessions keyed by a random id (the cookie value)."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._by_id: dict[str, Session] = {}

    def get(self, session_id: str | None, now: float | None = None) -> Session | None:
        session = self._by_id.get(session_id or "")
        if session is not None and session.expires > (time.time() if now is None else now):
            return session
        return None

    def new(self, role: str | None = None, must_change: bool = False) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time() + self.lifetime_s, role, must_change)
        self._by_id[session.id] = session
        return session

    def drop(self, session: Session) -> None:
        self._by_id.pop(session.id, None)

    def drop_role(self, role: str, keep: Session | None = None) -> None:
        """After a password change, other logins of that account end."""
        for sid, session in list(self._by_id.items()):
            if session.role == role and session is not keep:
                del self._by_id[sid]

    def sweep(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        expired = [sid for sid, s in self._by_id.items() if s.expires <= now]
        for sid in expired:
            del self._by_id[sid]
        return len(expired)


class LoginLimiter:
    """At most ``max_failures`` failed logins per client address and per account in ``window_s``."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, keys: list[str], now: float | None = None) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        now = time.time() if now is None else now
        wait = 0.0
        for key in keys:
            times = self._failures.get(key)
            if not times:
                continue
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.max_failures:
                wait = max(wait, times[0] + self.window_s - now)
        return wait

    def failed(self, keys: list[str], now: float | None = None) -> None:
        for key in keys:
            self._failures[key].append(time.time() if now is None else now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
