"""The aggregator's database is upgraded in place: what an older release stored stays, as the
stream of the store "" (stores older than identities)."""

from __future__ import annotations

from cloud_sync.db import SCHEMA_VERSION, connect
from tests.cloud_sync.aggregator import cloud_target, pg_url  # noqa: F401

# The tables release 1 created (schema version 1).
VERSION_1 = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY)",
    "INSERT INTO schema_version (version) VALUES (1)",
    """CREATE TABLE devices (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION, last_seen DOUBLE PRECISION)""",
    """CREATE TABLE streams (device_id TEXT NOT NULL, stream TEXT NOT NULL, last_seq BIGINT NOT NULL,
        last_ts DOUBLE PRECISION, backlog BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (device_id, stream))""",
    """CREATE TABLE batches (device_id TEXT NOT NULL, stream TEXT NOT NULL, first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL, count INTEGER NOT NULL, digest TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, stream, first_seq))""",
    """CREATE TABLE readings (device_id TEXT NOT NULL, stream TEXT NOT NULL, seq BIGINT NOT NULL,
        ts DOUBLE PRECISION NOT NULL, line TEXT NOT NULL, PRIMARY KEY (device_id, stream, seq))""",
    """CREATE TABLE documents (device_id TEXT NOT NULL, stream TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL,
        ts DOUBLE PRECISION, data TEXT NOT NULL, PRIMARY KEY (device_id, stream, key))""",
    "INSERT INTO streams VALUES ('pi-1', 'readings', 2, 1795000001.0, 0, 1795000002.0)",
    "INSERT INTO batches VALUES ('pi-1', 'readings', 1, 2, 2, 'abc', 1795000002.0)",
    """INSERT INTO readings VALUES ('pi-1', 'readings', 1, 1795000000.0, '{"seq":1}'),
        ('pi-1', 'readings', 2, 1795000001.0, '{"seq":2}')""",
    "INSERT INTO documents VALUES ('pi-1', 'energy', '900', 7, 900.0, '{}')",
)


async def test_a_version_1_database_is_upgraded_keeping_everything(cloud_target: str) -> None:
    db = await connect(cloud_target)  # creates the current schema in an empty database ...
    async with db.transaction() as tx:  # ... which we replace by what release 1 left
        for table in ("schema_version", "devices", "operators", "streams", "batches", "readings", "documents"):
            await tx.execute(f"DROP TABLE {table}")
        for statement in VERSION_1:
            await tx.execute(statement)
    await db.close()
    db = await connect(cloud_target)
    try:
        async with db.transaction(readonly=True) as tx:
            assert await tx.fetch("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
            assert await tx.fetch("SELECT device_id, store_id, last_seq FROM streams") == [("pi-1", "", 2)]
            assert await tx.fetch("SELECT store_id, first_seq, last_seq FROM batches") == [("", 1, 2)]
            assert await tx.fetch("SELECT store_id, seq, line FROM readings ORDER BY seq") == [
                ("", 1, '{"seq":1}'), ("", 2, '{"seq":2}')]
            assert await tx.fetch("SELECT key, seq, store_id FROM documents") == [("900", 7, "")]
    finally:
        await db.close()
