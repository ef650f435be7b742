"""Devices and operators, and the credentials they present.

A credential is ``dev.<device id>.<secret>`` or ``op.<operator name>.<secret>`` with a
256-bit random secret. It is shown once, when created; the database keeps only a salted
SHA-256 hash (:func:`common.passwords.hash_secret`: nobody guesses 256 random bits, so a leaked
database does not leak credentials, and checking one costs microseconds on every request of a
whole fleet). Credentials created before are scrypt hashes, whose check costs tens of
milliseconds, so a successful one is remembered in memory, keyed by the stored hash: a revoked
or re-issued credential changes or disables that row and is refused at once by every instance
(nothing about validity lives only in memory).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Column, Table, insert, select, update

from cloud_sync import audit
from cloud_sync.audit import Actor
from cloud_sync.db import Database
from cloud_sync.schema.sync import devices, operators
from cloud_sync.limits import FailureLimiter
from common.passwords import hash_secret, is_fast, verify_password
from common.sync_protocol import DEVICE_ID

Kind = Literal["dev", "op"]
_CACHE_SIZE = 4096
# Verified when the name is unknown, so that costs as much as a wrong secret; no secret matches it.
_MATCHES_NOTHING = "sha256$" + base64.b64encode(bytes(16)).decode() + "$" + base64.b64encode(bytes(32)).decode()


class RegistryError(ValueError):
    """A registry command cannot be carried out (unknown or duplicate name)."""


class AuthError(Exception):
    """The request's credential is missing, malformed, unknown (401), revoked (403) or one of
    too many failed ones (429, ``retry_after`` seconds)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str


# Per kind: the table, its name column and what the messages call one.
_TABLES: dict[str, tuple[Table, Column[str], str]] = {
    "dev": (devices, devices.c.id, "device"), "op": (operators, operators.c.name, "operator")}


async def add(db: Database, kind: Kind, name: str, actor: Actor | None = None) -> str:
    """Register a device or operator; returns its credential (shown once, stored hashed).
    The audit log records it as done by ``actor`` (default: this process's user, see
    :func:`cloud_sync.audit.process_actor`) in the same transaction."""
    table, column, what = _TABLES[kind]
    if not DEVICE_ID.match(name):
        raise RegistryError(f"{what} {name!r}: use 1-64 characters of A-Z a-z 0-9 _ -")
    secret = secrets.token_urlsafe(32)
    async with db.begin() as conn:
        if (await conn.execute(select(column).where(column == name))).first():
            raise RegistryError(f"{what} {name!r} already exists; revoke it or choose another name")
        await conn.execute(insert(table).values(
            {column.name: name, "secret_hash": hash_secret(secret), "created_at": time.time()}))
        await audit.record_in(conn, actor or audit.process_actor(), f"{what}_add", name)
    return f"{kind}.{name}.{secret}"


async def revoke(db: Database, kind: Kind, name: str, actor: Actor | None = None) -> None:
    """End a credential at once; the device's data stays readable by operators. Audited as
    :func:`add` is (an unknown name is refused and not recorded: nothing was done)."""
    table, column, what = _TABLES[kind]
    async with db.begin() as conn:
        row = (await conn.execute(select(table.c.revoked_at).where(column == name))).first()
        if row is None:
            raise RegistryError(f"{what} {name!r} does not exist")
        if row.revoked_at is None:
            await conn.execute(update(table).where(column == name).values(revoked_at=time.time()))
        await audit.record_in(conn, actor or audit.process_actor(), f"{what}_revoke", name,
                              "ok" if row.revoked_at is None else "ok: already revoked")


class Authenticator:
    """Checks ``Authorization: Bearer <credential>`` against the registry.

    An unknown name costs the same hash check as a wrong secret (against a hash that matches
    nothing) and gets the same answer, so neither the answer nor its time tells which names
    exist. Failed credentials are limited per source address and per name (``limiter``):
    past the limit the answer is 429 with Retry-After and no hash is checked, except that a
    credential already verified by this instance is still accepted. A SHA-256 check runs
    inline (no other request sees its charge on the limiter), an scrypt one on a thread.
    """

    def __init__(self, db: Database, limiter: FailureLimiter) -> None:
        self.db = db
        self.limiter = limiter
        self._verified: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def check(self, header: str | None, source: str = "") -> Principal:
        if not header or not header.startswith("Bearer "):
            raise AuthError(401, "missing credential: send Authorization: Bearer <credential>")
        kind, _, rest = header[len("Bearer "):].strip().partition(".")
        name, _, secret = rest.rpartition(".")
        if kind not in _TABLES or not name or not secret:
            raise AuthError(401, "malformed credential: expected dev.<id>.<secret> or op.<name>.<secret>")
        table, column, what = _TABLES[kind]
        async with self.db.read() as conn:
            row = (await conn.execute(select(table.c.secret_hash, table.c.revoked_at).where(column == name))).first()
        stored, revoked_at = row if row is not None else (_MATCHES_NOTHING, None)
        key = (stored, hashlib.sha256(secret.encode()).hexdigest())
        if key in self._verified:
            self._verified.move_to_end(key)
        else:
            await self._verify_limited(secret, stored, row is not None, (f"src:{source}", f"{kind}:{name}"),
                                       f"{what} {name!r}")
            self._verified[key] = None
            if len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        if revoked_at is not None:
            raise AuthError(403, f"{what} {name!r} is revoked")
        return Principal(kind, name)  # type: ignore[arg-type]

    async def _verify_limited(self, secret: str, stored: str, known: bool, keys: tuple[str, str], who: str) -> None:
        wait = self.limiter.retry_after(keys)
        if wait is not None:
            raise AuthError(429, f"too many failed credentials from this address or for {who}; "
                                 f"retry after {math.ceil(wait)} s", retry_after=math.ceil(wait))
        stamp = self.limiter.charge(keys)
        if is_fast(stored):
            verified = verify_password(secret, stored)
        else:
            verified = await asyncio.to_thread(verify_password, secret, stored)
        if not verified or not known:
            raise AuthError(401, f"credential not accepted for {who}")
        self.limiter.refund(keys, stamp)
