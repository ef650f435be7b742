"""The aggregator's database: SQLite (aiosqlite) or PostgreSQL (asyncpg) through SQLAlchemy.

The tables are SQLAlchemy Core (:mod:`cloud_sync.schema`) and Alembic migrations
(``cloud_sync/migrations``) bring any database to the release's schema when it connects. Write
transactions are serialised: on PostgreSQL by row locks (and the migration by an advisory lock,
so instances starting together migrate once), on SQLite by ``BEGIN IMMEDIATE`` taken in turn by
the writers of this process. Everything the service keeps is in the database, so any number of
instances can serve one PostgreSQL and a restarted instance simply carries on.

Features use ``async with db.begin() as conn:`` (a write transaction) or ``db.read()`` (a
read-only one); ``conn`` is an :class:`~sqlalchemy.ext.asyncio.AsyncConnection` for Core
statements. ``db.upsert(table)`` is an INSERT that can say ON CONFLICT in either dialect, and
:func:`insert_rows` stores many rows at once the fastest way each database has.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import Connection, Table, event, func, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from cloud_sync.schema.sync import schema_version
from common.backoff import Backoff

if TYPE_CHECKING:  # Alembic is imported where a migration runs: a database at head needs none of it
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: The newest revision in ``migrations/versions`` (tests/cloud_sync/test_schema.py holds it to
#: Alembic's head): a database already at it is opened without loading Alembic and its scripts.
SCHEMA_HEAD = "0009"
_MIGRATION_LOCK = 7152001  # pg_advisory_xact_lock key: one instance migrates at a time
_LEGACY_VERSIONS = (1, 2)  # schema_version values of releases before Alembic (adopted by 0001)
_WRITE = "nattery_write"  # execution option: this SQLite transaction begins IMMEDIATE
WAL_SWITCH_ATTEMPTS = 20  # about 8 s of pauses in all

Kind = Literal["sqlite", "postgresql"]
T = TypeVar("T")


class DatabaseError(RuntimeError):
    """The database cannot be used (unreachable, newer schema)."""


def upsert(kind: Kind, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can say ON CONFLICT (``on_conflict_do_update``, ``excluded``), which
    SQLite and PostgreSQL spell alike but SQLAlchemy builds per dialect."""
    return postgresql.insert(table) if kind == "postgresql" else sqlite.insert(table)


def url_for(target: str) -> str:
    """The SQLAlchemy URL for a target: ``postgresql://…`` → asyncpg, anything else a SQLite file."""
    for scheme in ("postgresql://", "postgres://"):
        if target.startswith(scheme):
            return "postgresql+asyncpg://" + target[len(scheme):]
    return f"sqlite+aiosqlite:///{Path(target)}"


def redact(url: str) -> str:
    """The URL without a password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class Database:
    """An :class:`AsyncEngine` with the aggregator's transaction rules."""

    def __init__(self, engine: AsyncEngine, target: str) -> None:
        self.engine = engine
        self.target = target
        self.kind: Kind = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
        self._writers = asyncio.Lock()  # SQLite: one BEGIN IMMEDIATE at a time in this process

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    def upsert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        """:func:`upsert` in this database's dialect."""
        return upsert(self.kind, table)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends (rolled back if it raises)."""
        if self.kind == "sqlite":
            async with self._writers, self._connect() as conn:
                await conn.execution_options(**{_WRITE: True})
                async with conn.begin():
                    yield conn
        else:
            async with self._connect() as conn, conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction: one consistent snapshot, no write lock."""
        async with self._connect() as conn:
            if self.kind == "postgresql":
                await conn.execution_options(postgresql_readonly=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await self.engine.connect()
        except (OSError, SQLAlchemyError) as exc:
            raise self._unusable(exc) from exc
        try:
            yield conn
        except BaseException:
            if self.kind == "sqlite":
                await _end_driver_transaction(conn)
            raise
        finally:
            await conn.close()

    def _unusable(self, exc: BaseException) -> DatabaseError:
        reason = getattr(exc, "orig", None) or exc
        if self.kind == "postgresql":
            return DatabaseError(f"PostgreSQL at {redact(self.target)}: cannot connect ({reason})")
        return DatabaseError(f"{self.target}: cannot open database ({reason})")

    @asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that no other instance's migration runs beside."""
        async with self.begin() as conn:
            if self.kind == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            yield conn

    async def at_head(self) -> bool:
        """True when the schema is this release's (``alembic_version`` holds :data:`SCHEMA_HEAD`
        alone): there is nothing to migrate. Any other state, a newer release's included, is
        :meth:`migrate`'s to handle."""
        async with self.read() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
                return False  # a new database, or one from before Alembic
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        return list(versions) == [SCHEMA_HEAD]

    async def migrate(self) -> None:
        """Bring the schema to this release's head (``alembic upgrade head``)."""
        from alembic import command

        async with self.migration_lock() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "head"))

    async def close(self) -> None:
        await self.engine.dispose()


async def using(target: str, action: Callable[[Database], Awaitable[T]]) -> T:
    """Connect to ``target`` (as :func:`connect`), run ``action`` on it and close: a command's database."""
    db = await connect(target)
    try:
        return await action(db)
    finally:
        await db.close()


async def connect(target: str) -> Database:
    """``postgresql://…`` → PostgreSQL, anything else is a SQLite file path; schema migrated."""
    db = Database(create_engine(target), target)
    try:
        if not await db.at_head():
            await db.migrate()
    except BaseException:
        await db.close()
        raise
    return db


def create_engine(target: str) -> AsyncEngine:
    """The engine for ``target``; on SQLite every connection gets WAL and a busy timeout, and
    transactions are begun by us (``BEGIN``, or ``BEGIN IMMEDIATE`` for writers)."""
    url = url_for(target)
    if not url.startswith("sqlite"):
        # A fixed pool: connections beyond it were opened and closed again per request under load
        # (a PostgreSQL backend started for each upload); requests past it wait for one instead.
        return create_async_engine(url, pool_size=10, max_overflow=0)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    # Every transaction ends in commit or rollback (begin/read), so a returned connection needs
    # no reset: each statement on aiosqlite is a hop to the connection's thread, worth saving.
    engine = create_async_engine(url, pool_reset_on_return=None)

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver begins nothing itself: "begin" below does
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # page_size applies to a database not written yet: readings are about 2 kB each, and
        # 16 kB pages hold eight where the default 4 kB hold two (measured: storing a million
        # costs 6.5 instead of 10.5 s of CPU); an existing database keeps its own.
        cursor.execute("PRAGMA page_size=16384")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        # On the driver: one hop to the connection's thread, where a statement through
        # SQLAlchemy's cursor takes three (open, execute, close).
        begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN"
        driver = conn.connection.driver_connection
        assert driver is not None  # an open connection
        await_(driver.execute(begin))

    return engine


async def _end_driver_transaction(conn: AsyncConnection) -> None:
    """Roll back whatever transaction the SQLite driver still has open, before the connection goes
    back to the pool (which does not reset it, ``create_engine``). A task cancelled while its
    ``BEGIN`` or ``BEGIN IMMEDIATE`` waits in SQLite's busy handler (a client gone mid-request,
    shutdown) leaves that statement queued on the connection's thread: it begins after the
    cancellation, unknown to SQLAlchemy, and would hold the write lock (or a read snapshot that
    keeps the WAL from being checkpointed) for as long as the connection lives. The rollback is
    queued behind it, on the same thread, so it ends that transaction too."""
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is not None:
        await driver.rollback()


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, tried again while another connection holds the file.

    Instances starting together on a new file (still in rollback-journal mode) each switch it:
    SQLite answers "database is locked" at once, without the busy timeout (each holds the lock
    the other needs to change the mode), and the later one finds it in WAL already.
    """
    pauses = Backoff(0.01, 0.5)
    for attempt in range(1, WAL_SWITCH_ATTEMPTS + 1):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS:
                raise
        await_(asyncio.sleep(pauses.delay(attempt)))


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the packaged migrations (``connection``: migrate on it)."""
    from alembic.config import Config

    config = Config(MIGRATIONS / "alembic.ini")
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def refuse_unknown(connection: Connection, scripts: ScriptDirectory) -> None:
    """A schema this release does not know (a newer release's) is not touched (the migration
    environment checks before it migrates anything)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    current = MigrationContext.configure(connection).get_current_heads()
    head = scripts.get_current_head()
    for revision in current:
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise DatabaseError(
                f"aggregator database schema revision {revision} is newer than this release supports "
                f"({head}); refusing to touch it — update the software"
            ) from None
    if not current and inspect(connection).has_table("schema_version"):
        version = connection.execute(select(func.max(schema_version.c.version))).scalar()
        if version not in _LEGACY_VERSIONS:
            raise DatabaseError(
                f"aggregator database schema version {version} (before revisions) is not one this release "
                f"can upgrade ({', '.join(map(str, _LEGACY_VERSIONS))}); refusing to touch it"
            )


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """Many rows (tuples in the table's column order) at once: COPY on PostgreSQL, one
    ``executemany`` of the compiled INSERT on SQLite. Both hand the tuples to the driver as
    they are; SQLAlchemy's own executemany would first make a dictionary of each (measured:
    COPY takes a third of the time of asyncpg's executemany, and on SQLite the dictionaries
    cost about 1 µs a row)."""
    if not rows:
        return
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # an open connection
    if conn.dialect.name == "postgresql":
        if not driver.is_in_transaction():
            await conn.execute(select(1))  # SQLAlchemy begins on the driver with a first statement
        await driver.copy_records_to_table(table.name, records=rows, columns=[c.name for c in table.columns])
    else:
        await driver.executemany(_compiled_insert(table, conn.dialect), rows)


@functools.cache
def _compiled_insert(table: Table, dialect: Dialect) -> str:
    return str(insert(table).compile(dialect=dialect))
