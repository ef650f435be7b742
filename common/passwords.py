"""Salted scrypt hashes of passwords and credential secrets, for the web accounts and the
aggregator's registry alike.

Written: ``scrypt$<n>$<r>$<p>$<salt>$<digest>`` (base64 salt and digest), with n=2**14, r=8,
p=1: ~50 ms and 16 MiB on a Pi 4, cheap enough for a login, expensive enough for guessing.
Read as well: ``scrypt$<salt>$<digest>``, which the aggregator stored before (same parameters,
not written into the hash). Verifying is constant-time in the digest and never raises: a
malformed hash, or one asking for more memory than scrypt's default limit, matches nothing.
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


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (either format)."""
    parts = stored.split("$")
    try:
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
