"""The appliance's two web accounts (homeowner, installer) and their passwords.

Passwords are kept as salted scrypt hashes (:mod:`common.passwords`) in
``<data_dir>/web-users.json``. The first start
seeds both accounts from the configured initial passwords; an account seeded with the documented
default must choose a new password before it can do anything else. Hashing runs in a thread so
a login never stalls live updates. The web page checks logins against them; commissioning sets
the homeowner's password at hand-over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import structlog

from common.files import write_atomic
from common.passwords import hash_password, verify_password
from device.config import Config

log = structlog.get_logger(__name__)

USERS_FILE = "web-users.json"
ROLES = ("homeowner", "installer")
DEFAULT_PASSWORDS = {"homeowner": "nattery", "installer": "installer"}
MIN_PASSWORD_LEN = 8


class AuthError(ValueError):
    """A password change was refused; the message says why."""


def check_new_password(old: str, new: str, repeat: str) -> None:
    """Refuse a new password that differs from its repetition, is short, a default or the old one."""
    if new != repeat:
        raise AuthError("new_password: the two new passwords differ")
    if len(new) < MIN_PASSWORD_LEN:
        raise AuthError(f"new_password: at least {MIN_PASSWORD_LEN} characters")
    if new in DEFAULT_PASSWORDS.values() or new == old:
        raise AuthError("new_password: choose a password that is not a default or the old one")


@dataclass
class Account:
    role: str
    password_hash: str
    must_change: bool


class Users:
    """The two accounts in ``web-users.json`` (mode 0600, replaced atomically)."""

    def __init__(self, path: Path, initial: dict[str, str]) -> None:
        self.path = path
        self.initial = initial
        self.accounts: dict[str, Account] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def for_config(cls, cfg: Config, data_dir: Path | None = None) -> Users:
        """This device's accounts file (in ``data_dir``, default ``device.data_dir``), seeded from
        the configured initial passwords."""
        return cls(
            (data_dir or cfg.device.data_dir) / USERS_FILE,
            {"homeowner": cfg.web.homeowner_password, "installer": cfg.web.installer_password},
        )

    async def load(self) -> None:
        self.accounts = await asyncio.to_thread(self._read_or_seed)

    def _read_or_seed(self) -> dict[str, Account]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            accounts = {role: Account(role=role, **raw[role]) for role in ROLES if role in raw}
        except FileNotFoundError:
            accounts = {}
        missing = [role for role in ROLES if role not in accounts]
        for role in missing:
            password = self.initial[role]
            accounts[role] = Account(role, hash_password(password), password == DEFAULT_PASSWORDS[role])
            log.info("web account seeded", role=role, must_change=accounts[role].must_change)
        if missing:
            self._write(accounts)
        return accounts

    def _write(self, accounts: dict[str, Account]) -> None:
        data = {a.role: {"password_hash": a.password_hash, "must_change": a.must_change} for a in accounts.values()}
        write_atomic(self.path, json.dumps(data, indent=2))

    def fingerprint(self, role: str) -> str:
        """A short digest of the account's current password hash: a web session remembers it, so
        a password changed anywhere ends the sessions that began before ("" for no account)."""
        account = self.accounts.get(role)
        return "" if account is None else hashlib.sha256(account.password_hash.encode()).hexdigest()[:16]

    async def check(self, role: str, password: str) -> Account | None:
        account = self.accounts.get(role)
        if account is None:
            return None
        ok = await asyncio.to_thread(verify_password, password, account.password_hash)
        return account if ok else None

    async def change_password(self, role: str, old: str, new: str, repeat: str) -> None:
        """Change a password after checking the old one; refuses weak or default choices."""
        check_new_password(old, new, repeat)
        async with self._lock:
            if await self.check(role, old) is None:
                raise AuthError("old_password: wrong password")
            await self._store(role, new)
        log.info("web password changed", role=role)

    async def set_password(self, role: str, new: str) -> None:
        """Set a password without the old one: the installer's hand-over (``nattery commission``),
        who has shell access to the device anyway. The web page always asks for the old one."""
        async with self._lock:
            await self._store(role, new)
        log.info("web password set", role=role)

    async def _store(self, role: str, new: str) -> None:
        accounts = dict(self.accounts)
        accounts[role] = Account(role, await asyncio.to_thread(hash_password, new), False)
        await asyncio.to_thread(self._write, accounts)
        self.accounts = accounts
