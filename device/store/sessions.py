"""Logged-in web sessions (see :mod:`device.web.auth`): kept so a restart logs nobody out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from device.store.core import StoreCore


class SessionQueries(StoreCore):
    def save_web_session(self, row: Mapping[str, Any]) -> None:
        """Insert or replace one session (``key``, ``csrf``, ``role``, ``must_change``, ``password``, ``expires``)."""
        self._write(lambda: self.db.table("web_sessions").upsert(dict(row), pk="key"))

    def web_sessions(self, now: float) -> list[dict[str, Any]]:
        """The sessions that have not expired at ``now``."""
        return list(self.db.query("SELECT * FROM web_sessions WHERE expires > ?", [now]))

    def delete_web_sessions(self, keys: Sequence[str]) -> None:
        if keys:
            self._write(lambda: self.db.execute(
                f"DELETE FROM web_sessions WHERE key IN ({', '.join('?' * len(keys))})", list(keys)))

    def prune_web_sessions(self, now: float) -> int:
        """Delete expired sessions; returns how many."""
        return self._write(lambda: self.db.execute("DELETE FROM web_sessions WHERE expires <= ?", [now]).rowcount)
