"""The aggregator's database: SQLite (one file) or PostgreSQL (asyncpg), one SQL dialect.

Queries are written once with PostgreSQL's ``$1`` placeholders; for SQLite they become
``?1``, which SQLite understands. Writers are serialised per stream by a row lock on
PostgreSQL and by ``BEGIN IMMEDIATE`` on SQLite. Everything the service keeps is in the database, so any number
of instances can serve one PostgreSQL (row locks keep them consistent) and a restarted
instance simply carries on.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

SCHEMA_VERSION = 2
# Tables per device stream are keyed by the device's store too (``store_id``, "" for stores older
# than identities): a device whose SD card was replaced numbers its items from 1 again, in a
# stream of its own, so the new store neither skips its first items nor overwrites the old ones.
_STREAMS = """CREATE TABLE IF NOT EXISTS {name} (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '', last_seq BIGINT NOT NULL,
        last_ts DOUBLE PRECISION, backlog BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (device_id, stream, store_id))"""
_BATCHES = """CREATE TABLE IF NOT EXISTS {name} (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '', first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL, count INTEGER NOT NULL, digest TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, stream, store_id, first_seq))"""
_READINGS = """CREATE TABLE IF NOT EXISTS {name} (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '', seq BIGINT NOT NULL,
        ts DOUBLE PRECISION NOT NULL, line TEXT NOT NULL, PRIMARY KEY (device_id, stream, store_id, seq))"""
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS devices (
        id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION, last_seen DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS operators (
        name TEXT PRIMARY KEY, secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION)""",
    # Per device, stream and store: the highest sequence stored, the newest item time and the
    # backlog the device reported with its last batch. Its row lock serialises ingest.
    _STREAMS.format(name="streams"),
    # Every accepted batch, so an exact retry is recognised (same range and digest).
    _BATCHES.format(name="batches"),
    # Reading items exactly as the device sent them (``line`` is the item's JSON line).
    _READINGS.format(name="readings"),
    # The latest version of each document (energy slot, settlement, EDI file), whichever store sent it.
    """CREATE TABLE IF NOT EXISTS documents (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL,
        ts DOUBLE PRECISION, data TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (device_id, stream, key))""",
    """CREATE INDEX IF NOT EXISTS documents_ts ON documents (device_id, stream, ts)""",
)


def _rekeyed(table: str, create: str, columns: str) -> tuple[str, ...]:
    """Rebuild ``table`` with ``store_id`` in its key (the same SQL on SQLite and PostgreSQL)."""
    return (
        create.format(name=f"{table}_v2"),
        f"INSERT INTO {table}_v2 ({columns}) SELECT {columns} FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v2 RENAME TO {table}",
    )


# Upgrades from each older version, in order; the statements of one run in one transaction.
UPGRADES: dict[int, tuple[str, ...]] = {
    2: (
        *_rekeyed("streams", _STREAMS, "device_id, stream, last_seq, last_ts, backlog, updated_at"),
        *_rekeyed("batches", _BATCHES, "device_id, stream, first_seq, last_seq, count, digest, received_at"),
        *_rekeyed("readings", _READINGS, "device_id, stream, seq, ts, line"),
        "ALTER TABLE documents ADD COLUMN store_id TEXT NOT NULL DEFAULT ''",
    ),
}


class DatabaseError(RuntimeError):
    """The database cannot be used (unreachable, newer schema)."""


class Tx(Protocol):
    """One transaction. Rows come back as tuples."""

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None: ...
    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...
    async def execute(self, sql: str, *args: Any) -> None: ...
    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None: ...
    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None: ...


class Database(Protocol):
    kind: str

    def transaction(self, readonly: bool = False) -> Any:
        """An async context manager yielding a :class:`Tx`; ``readonly`` takes no write lock."""
        ...

    async def close(self) -> None: ...


async def connect(target: str) -> Database:
    """``postgresql://…`` → PostgreSQL, anything else is a SQLite file path; schema ensured."""
    db: Database
    if target.startswith(("postgresql://", "postgres://")):
        db = await PostgresDatabase.open(target)
    else:
        db = await SqliteDatabase.open(Path(target))
    try:
        await _ensure_schema(db)
    except BaseException:
        await db.close()
        raise
    return db


async def _ensure_schema(db: Database) -> None:
    async with db.transaction() as tx:
        if db.kind == "postgresql":
            await tx.execute("SELECT pg_advisory_xact_lock(7152001)")  # concurrent starts
        await tx.execute(SCHEMA[0])
        row = await tx.fetchrow("SELECT max(version) FROM schema_version")
        version = row[0] if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise DatabaseError(
                f"aggregator database schema version {version} is newer than this release supports "
                f"({SCHEMA_VERSION}); refusing to touch it — update the software"
            )
        for upgrade in range((version or SCHEMA_VERSION) + 1, SCHEMA_VERSION + 1):
            for statement in UPGRADES[upgrade]:
                await tx.execute(statement)
        for statement in SCHEMA[1:]:
            await tx.execute(statement)
        if version != SCHEMA_VERSION:
            await tx.execute("INSERT INTO schema_version (version) VALUES ($1)", SCHEMA_VERSION)


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _sqlite_sql(sql: str) -> str:
    return _PLACEHOLDER.sub(r"?\1", sql)


class SqliteDatabase:
    """One connection owned by one worker thread; transactions take turns (asyncio lock)."""

    kind = "sqlite"

    def __init__(self, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._conn = conn
        self._executor = executor
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-db")

        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn

        try:
            conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except (OSError, sqlite3.Error) as exc:
            executor.shutdown()
            raise DatabaseError(f"{path}: cannot open database ({exc})") from exc
        return cls(conn, executor)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @asynccontextmanager
    async def transaction(self, readonly: bool = False) -> AsyncIterator[Tx]:
        async with self._lock:
            tx = _SqliteTx(self, "BEGIN" if readonly else "BEGIN IMMEDIATE")
            try:
                yield tx
            except BaseException:
                if tx.begun:
                    await self._run(self._conn.execute, "ROLLBACK")
                raise
            if tx.begun:
                await self._run(self._conn.execute, "COMMIT")

    async def close(self) -> None:
        await self._run(self._conn.close)
        self._executor.shutdown(wait=True)


class _SqliteTx:
    """Statements run on the connection's thread; BEGIN goes with the first of them (every
    hop to that thread costs a wake-up, which adds up on a busy machine)."""

    def __init__(self, db: SqliteDatabase, begin: str) -> None:
        self._db = db
        self._begin = begin
        self.begun = False

    async def _call(self, fn: Any) -> Any:
        def run() -> Any:
            if not self.begun:
                self._db._conn.execute(self._begin)
                self.begun = True
            return fn(self._db._conn)

        return await self._db._run(run)

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        return await self._call(lambda c: c.execute(_sqlite_sql(sql), args).fetchone())  # type: ignore[no-any-return]

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._call(lambda c: c.execute(_sqlite_sql(sql), args).fetchall())  # type: ignore[no-any-return]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._call(lambda c: c.execute(_sqlite_sql(sql), args))

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self._call(lambda c: c.executemany(_sqlite_sql(sql), rows))

    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        await self._call(lambda c: c.executemany(sql, rows))


class PostgresDatabase:
    """An asyncpg pool; bulk inserts use COPY."""

    kind = "postgresql"

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresDatabase:
        import asyncpg  # only needed for PostgreSQL: the `cloud` extra

        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=8)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseError(f"PostgreSQL at {_redact(url)}: cannot connect ({exc})") from exc
        return cls(pool)

    @asynccontextmanager
    async def transaction(self, readonly: bool = False) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as conn, conn.transaction(readonly=readonly):
            yield _PostgresTx(conn)

    async def close(self) -> None:
        await self._pool.close()


class _PostgresTx:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row = await self._conn.fetchrow(sql, *args)
        return None if row is None else tuple(row)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        await self._conn.executemany(sql, rows)

    async def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        await self._conn.copy_records_to_table(table, records=rows, columns=list(columns))


def _redact(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
