"""Credential checks at fleet scale: new credentials are salted SHA-256 (checked inline, so a
fleet's first uploads after a start cost microseconds each and no failure limit), and
credentials stored as scrypt before keep working, checked once per instance."""

from __future__ import annotations

import asyncio

import pytest

from cloud_sync import registry
from cloud_sync.db import connect
from cloud_sync.limits import FailureLimiter
from common.passwords import hash_password
from tests.cloud_sync.aggregator import cloud_target, pg_url  # noqa: F401 — fixtures


async def test_many_devices_checked_at_once_from_one_address_are_all_accepted(cloud_target: str) -> None:
    # Behind a load balancer every device comes from its address. An scrypt check ran on a thread
    # and was charged to the address's failure limit until it ended, so the eleventh device
    # whose first upload arrived while ten others were being checked got 429.
    db = await connect(cloud_target)
    try:
        names = [f"many-{n}" for n in range(30)]
        credentials = [await registry.add(db, "dev", name) for name in names]
        auth = registry.Authenticator(db, FailureLimiter(3, 60))
        checked = await asyncio.gather(*(auth.check(f"Bearer {c}", "10.0.0.1") for c in credentials))
        assert checked == [registry.Principal("dev", name) for name in names]
        with pytest.raises(registry.AuthError, match="credential not accepted for device 'many-0'"):
            await auth.check(f"Bearer {credentials[1].replace('many-1', 'many-0')}", "10.0.0.1")
    finally:
        await db.close()


async def test_a_credential_stored_as_scrypt_before_still_works_checked_once_per_instance(
        cloud_target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await connect(cloud_target)
    try:
        with monkeypatch.context() as before:
            before.setattr(registry, "hash_secret", hash_password)  # what registry.add stored before
            credential = await registry.add(db, "dev", "old-scrypt")
        checks: list[str] = []
        real_verify = registry.verify_password

        def counting(secret: str, stored: str) -> bool:
            checks.append(stored.split("$")[0])
            return real_verify(secret, stored)

        monkeypatch.setattr(registry, "verify_password", counting)
        auth = registry.Authenticator(db, FailureLimiter(3, 60))
        for _ in range(3):
            assert await auth.check(f"Bearer {credential}", "10.0.0.2") == registry.Principal("dev", "old-scrypt")
        assert checks == ["scrypt"]
        new = await registry.add(db, "dev", "new-sha")
        for _ in range(2):
            assert await auth.check(f"Bearer {new}", "10.0.0.2") == registry.Principal("dev", "new-sha")
        assert checks == ["scrypt", "sha256"]  # cached too, though a check costs microseconds
        await registry.revoke(db, "dev", "old-scrypt")
        with pytest.raises(registry.AuthError, match="device 'old-scrypt' is revoked"):
            await auth.check(f"Bearer {credential}", "10.0.0.2")
    finally:
        await db.close()
