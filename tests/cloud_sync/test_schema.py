"""The aggregator's schema: Alembic migrations match the SQLAlchemy model, a database made by a
release before Alembic (schema_version 1 or 2) is adopted keeping everything (what release 1
stored becomes the stream of the store ""), and a database this release does not know is refused."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from cloud_sync.db import MIGRATIONS, SCHEMA_HEAD, Database, DatabaseError, alembic_config, connect
from cloud_sync.schema import compare_type, load_all
from tests.cloud_sync.aggregator import cloud_target, empty_pg_url, empty_target, pg_url  # noqa: F401

# The tables release 1 created (schema version 1), with some data.
VERSION_1 = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY)",
    "INSERT INTO schema_version (version) VALUES (1)",
    """CREATE TABLE devices (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION, last_seen DOUBLE PRECISION)""",
    """CREATE TABLE operators (name TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION)""",
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
    "CREATE INDEX documents_ts ON documents (device_id, stream, ts)",
    "INSERT INTO devices VALUES ('pi-1', 'scrypt$x', 1795000000.0, NULL, 1795000002.0)",
    "INSERT INTO streams VALUES ('pi-1', 'readings', 2, 1795000001.0, 0, 1795000002.0)",
    "INSERT INTO batches VALUES ('pi-1', 'readings', 1, 2, 2, 'abc', 1795000002.0)",
    """INSERT INTO readings VALUES ('pi-1', 'readings', 1, 1795000000.0, '{"seq":1}'),
        ('pi-1', 'readings', 2, 1795000001.0, '{"seq":2}')""",
    "INSERT INTO documents VALUES ('pi-1', 'energy', '900', 7, 900.0, '{}')",
)

# The tables release 2 created (schema version 2: keyed by store), with some data.
VERSION_2 = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY)",
    "INSERT INTO schema_version (version) VALUES (2)",
    """CREATE TABLE devices (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION, last_seen DOUBLE PRECISION)""",
    """CREATE TABLE operators (name TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION)""",
    """CREATE TABLE streams (device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '',
        last_seq BIGINT NOT NULL, last_ts DOUBLE PRECISION, backlog BIGINT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, stream, store_id))""",
    """CREATE TABLE batches (device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '',
        first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, count INTEGER NOT NULL, digest TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, stream, store_id, first_seq))""",
    """CREATE TABLE readings (device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '',
        seq BIGINT NOT NULL, ts DOUBLE PRECISION NOT NULL, line TEXT NOT NULL,
        PRIMARY KEY (device_id, stream, store_id, seq))""",
    """CREATE TABLE documents (device_id TEXT NOT NULL, stream TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL,
        ts DOUBLE PRECISION, data TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (device_id, stream, key))""",
    "CREATE INDEX documents_ts ON documents (device_id, stream, ts)",
    "INSERT INTO devices VALUES ('pi-1', 'scrypt$x', 1795000000.0, NULL, 1795000002.0)",
    "INSERT INTO streams VALUES ('pi-1', 'readings', 'card-b', 2, 1795000001.0, 0, 1795000002.0)",
    "INSERT INTO batches VALUES ('pi-1', 'readings', 'card-b', 1, 2, 2, 'abc', 1795000002.0)",
    """INSERT INTO readings VALUES ('pi-1', 'readings', 'card-b', 1, 1795000000.0, '{"seq":1}'),
        ('pi-1', 'readings', 'card-b', 2, 1795000001.0, '{"seq":2}')""",
    "INSERT INTO documents VALUES ('pi-1', 'energy', '900', 7, 900.0, '{}', 'card-b')",
)


async def old_release(target: str, statements: tuple[str, ...]) -> None:
    """Run ``statements`` with the plain driver, as a release before SQLAlchemy did."""
    if target.startswith("postgresql://"):
        conn = await asyncpg.connect(target)
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()
        return
    with sqlite3.connect(target) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


#: The newest revision: every migration runs when a database connects.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def fetch(db: Database, sql: str) -> list[tuple[Any, ...]]:
    async with db.read() as conn:
        return [tuple(row) for row in (await conn.execute(text(sql))).all()]


def differences(conn: Connection) -> list[Any]:
    """What autogenerate would put in a new migration: nothing, when the model is migrated."""
    return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": compare_type}), load_all()))


async def differences_from_model(db: Database) -> list[Any]:
    async with db.read() as conn:
        return await conn.run_sync(differences)


def test_the_migrations_form_one_line_numbered_in_order() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    assert len(scripts.get_heads()) == 1, f"several heads: {scripts.get_heads()}; set down_revision to the head"
    revisions = list(reversed(list(scripts.walk_revisions())))
    assert [r.revision for r in revisions] == [f"{n:04d}" for n in range(1, len(revisions) + 1)]
    for rev in revisions:
        assert rev.path is not None and re.fullmatch(rf"{rev.revision}_[a-z0-9_]+\.py", Path(rev.path).name)
    assert revisions[-1].revision == SCHEMA_HEAD, "set cloud_sync.db.SCHEMA_HEAD to the new migration's revision"


async def test_a_new_database_is_migrated_to_the_model(empty_target: str) -> None:
    db = await connect(empty_target)
    try:
        assert await differences_from_model(db) == []
        assert await fetch(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert await fetch(db, "SELECT version FROM schema_version") == [(3,)]  # refused by older releases
        assert await db.at_head()  # so the next start loads no Alembic
    finally:
        await db.close()
    db = await connect(empty_target)  # again: nothing left to do
    await db.close()


async def test_a_version_1_database_is_adopted_keeping_everything(empty_target: str) -> None:
    await old_release(empty_target, VERSION_1)
    db = await connect(empty_target)
    try:
        assert await differences_from_model(db) == []
        assert await fetch(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert await fetch(db, "SELECT version FROM schema_version") == [(3,)]
        assert await fetch(db, "SELECT id, last_seen FROM devices") == [("pi-1", 1795000002.0)]
        assert await fetch(db, "SELECT device_id, store_id, last_seq FROM streams") == [("pi-1", "", 2)]
        assert await fetch(db, "SELECT store_id, first_seq, last_seq FROM batches") == [("", 1, 2)]
        assert await fetch(db, "SELECT store_id, seq, line FROM readings ORDER BY seq") == [
            ("", 1, '{"seq":1}'), ("", 2, '{"seq":2}')]
        assert await fetch(db, "SELECT key, seq, store_id FROM documents") == [("900", 7, "")]
    finally:
        await db.close()


def test_a_new_sqlite_database_has_16_kb_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """Readings are about 2 kB: a new SQLite database stores eight to a page; one made by an
    older release keeps the page size it was created with (SQLite cannot change it in WAL)."""
    new, old = tmp_path / "new.db", tmp_path / "old.db"
    sqlite3.connect(old).execute("CREATE TABLE t (x)").connection.close()  # SQLite's default 4 kB pages

    async def open_both() -> None:
        for path in (new, old):
            await (await connect(str(path))).close()

    asyncio.run(open_both())
    assert sqlite3.connect(new).execute("PRAGMA page_size").fetchone() == (16384,)
    assert sqlite3.connect(old).execute("PRAGMA page_size").fetchone() == (4096,)


async def test_a_version_2_database_is_adopted_as_it_is(empty_target: str) -> None:
    await old_release(empty_target, VERSION_2)
    db = await connect(empty_target)
    try:
        assert await differences_from_model(db) == []
        assert await fetch(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert await fetch(db, "SELECT device_id, store_id, last_seq FROM streams") == [("pi-1", "card-b", 2)]
        assert await fetch(db, "SELECT store_id, seq, line FROM readings ORDER BY seq") == [
            ("card-b", 1, '{"seq":1}'), ("card-b", 2, '{"seq":2}')]
        assert await fetch(db, "SELECT key, seq, store_id FROM documents") == [("900", 7, "card-b")]
    finally:
        await db.close()


async def test_a_database_of_a_newer_release_is_refused_untouched(empty_target: str) -> None:
    db = await connect(empty_target)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    await db.close()
    with pytest.raises(DatabaseError, match=rf"schema revision 9999 is newer than this release supports \({HEAD}\); "
                                            "refusing to touch it — update the software"):
        await connect(empty_target)


async def test_an_unknown_version_from_before_revisions_is_refused(empty_target: str) -> None:
    await old_release(empty_target, (*VERSION_2[:1], "INSERT INTO schema_version (version) VALUES (7)"))
    with pytest.raises(DatabaseError, match=r"schema version 7 \(before revisions\) is not one this release can "
                                            r"upgrade \(1, 2\); refusing to touch it"):
        await connect(empty_target)


async def test_instances_starting_together_migrate_once(empty_target: str) -> None:
    dbs = await asyncio.gather(*(connect(empty_target) for _ in range(4)))
    try:
        assert await fetch(dbs[0], "SELECT version_num FROM alembic_version") == [(HEAD,)]
        assert await fetch(dbs[0], "SELECT version FROM schema_version") == [(3,)]
    finally:
        for db in dbs:
            await db.close()


async def test_a_new_sqlite_file_another_connection_writes_to_is_switched_to_wal_after_it(tmp_path: Path) -> None:
    """Another instance is writing to the new file, still in rollback-journal mode: SQLite refuses
    the switch to WAL at once ("database is locked", no busy wait), so it is tried again."""
    path = tmp_path / "cloud.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE other_instance (x INTEGER)")
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.execute, "COMMIT")
    db = await connect(str(path))
    try:
        assert await fetch(db, "PRAGMA journal_mode") == [("wal",)]
    finally:
        await db.close()
        other.close()


def test_the_alembic_command_line_migrates_a_database_named_by_url(tmp_path: Path) -> None:
    target = tmp_path / "cloud.db"

    def alembic(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "alembic", "-c", str(MIGRATIONS / "alembic.ini"),
                              "-x", f"url={target}", *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    alembic("upgrade", "head")
    assert alembic("current").strip() == f"{HEAD} (head)"
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    conn.close()
