"""Salted hashes of passwords (scrypt) and of random secrets (SHA-256), for the web accounts
and the aggregator's registry.

Passwords: ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (base64 salt and digest), with n=2**14, r=8,
p=1: ~50 ms and 16 MiB on a Pi 4, cheap enough for a login, expensive enough for guessing.
Read as well: ``scrypt$<salt>$<digest>``, which the aggregator stored before (same parameters,
not written into the hash).

Random secrets (the aggregator's 256-bit device and operator credentials): ``sha256$<salt>$<digest>``.
A slow hash only protects what can be guessed; nobody enumerates 2**256 secrets, so one SHA-256
protects a leaked database as well as scrypt does, and the aggregator can check a credential on
every request of a whole fleet (scrypt took a core for 20 ms per check). Never for passwords.

Verifying is constant-time in the digest and never raises: a malformed hash, or one asking for
more memory than scrypt's default limit, matches nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
SALT_BYTES = 16
DIGEST_BYTES = 32


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` in the written format."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=DIGEST_BYTES)
    return f"scrypt${N}${R}${P}$" + "$".join(base64.b64encode(part).decode() for part in (salt, digest))


def hash_secret(secret: str) -> str:
    """A new salted SHA-256 hash of a random secret of at least 128 bits (not a password)."""
    salt = secrets.token_bytes(SALT_BYTES)
    return "sha256$" + "$".join(base64.b64encode(part).decode() for part in (salt, _sha256(salt, secret)))


def is_fast(stored: str) -> bool:
    """Whether verifying against ``stored`` costs microseconds (else: scrypt's tens of ms)."""
    return stored.startswith("sha256$")


def _sha256(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (any of the formats above)."""
    parts = stored.split("$")
    try:
        if len(parts) == 3 and parts[0] == "sha256":
            salt, expected = base64.b64decode(parts[1], validate=True), base64.b64decode(parts[2], validate=True)
            return len(expected) == DIGEST_BYTES and hmac.compare_digest(_sha256(salt, password), expected)
        if len(parts) == 6 and parts[0] == "scrypt":
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        elif len(parts) == 3 and parts[0] == "scrypt":
            n, r, p = N, R, P
        else:
            return False
        salt, expected = base64.b64decode(parts[-2], validate=True), base64.b64decode(parts[-1], validate=True)
        if not expected:
            return False
        got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected))
    except (ValueError, binascii.Error, MemoryError):
        return False
    return hmac.compare_digest(got, expected)
