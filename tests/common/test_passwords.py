from __future__ import annotations

import base64
import hashlib

import pytest

from common.passwords import hash_password, hash_secret, is_fast, verify_password


def test_a_hash_verifies_its_password_only_and_is_salted() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", first) and not verify_password("wrong", first)


def test_a_web_account_hash_written_before_still_verifies() -> None:
    # device/web/auth.py's encoding: parameters in the hash
    salt = bytes(range(16))
    digest = hashlib.scrypt(b"old homeowner", salt=salt, n=2**14, r=8, p=1, dklen=32)
    stored = "scrypt$16384$8$1$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()
    assert verify_password("old homeowner", stored) and not verify_password("old homeowneR", stored)


def test_an_aggregator_credential_hash_written_before_still_verifies() -> None:
    # cloud_sync/registry.py's encoding: scrypt$salt$digest, parameters implied
    salt = bytes(range(16, 32))
    digest = hashlib.scrypt(b"device secret", salt=salt, n=2**14, r=8, p=1, dklen=32)
    stored = "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()
    assert verify_password("device secret", stored) and not verify_password("device secreT", stored)


def test_a_secret_hash_is_salted_sha256_and_verifies_its_secret_only() -> None:
    first, second = hash_secret("dev-secret-256-bits"), hash_secret("dev-secret-256-bits")
    assert first != second and first.startswith("sha256$") and is_fast(first)
    _, salt, digest = first.split("$")
    assert base64.b64decode(digest) == hashlib.sha256(base64.b64decode(salt) + b"dev-secret-256-bits").digest()
    assert verify_password("dev-secret-256-bits", first) and not verify_password("dev-secret-256-bitS", first)
    assert not is_fast(hash_password("a person's password"))


@pytest.mark.parametrize(
    "stored",
    [
        "md5$abc",
        "",
        "scrypt$not base64!$AAAA",
        "scrypt$16384$8$1$AAAA",
        "scrypt$x$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # asks for 1 TiB: refused, not attempted
        "scrypt$AAAAAAAAAAAAAAAAAAAAAA==$",
        "sha256$not base64!$AAAA",
        "sha256$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # a digest of the wrong length
        "sha256$AAAAAAAAAAAAAAAAAAAAAA==",
    ],
)
def test_a_malformed_hash_matches_nothing_and_does_not_raise(stored: str) -> None:
    assert verify_password("anything", stored) is False
