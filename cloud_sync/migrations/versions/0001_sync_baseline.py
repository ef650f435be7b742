"""The sync's tables as release 2 left them (schema_version 2), and the adoption of older databases.

A database made before Alembic has a ``schema_version`` table: version 1 is brought to 2 the
way release 2 did (streams, batches and readings rebuilt with ``store_id`` in their key,
documents given a ``store_id``), version 2 is taken as it is. Either way, and in a new database,
``schema_version`` is then set to 3: a release from before Alembic refuses a database whose
version is newer than its own, so it cannot write into a schema it does not know.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GUARD_VERSION = 3  # what releases before Alembic read as "newer than this release supports"

_STREAMS = """CREATE TABLE {name} (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '', last_seq BIGINT NOT NULL,
        last_ts DOUBLE PRECISION, backlog BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (device_id, stream, store_id))"""
_BATCHES = """CREATE TABLE {name} (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '', first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL, count INTEGER NOT NULL, digest TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, stream, store_id, first_seq))"""
_READINGS = """CREATE TABLE {name} (
        device_id TEXT NOT NULL, stream TEXT NOT NULL, store_id TEXT NOT NULL DEFAULT '', seq BIGINT NOT NULL,
        ts DOUBLE PRECISION NOT NULL, line TEXT NOT NULL, PRIMARY KEY (device_id, stream, store_id, seq))"""


def _rekeyed(table: str, create: str, columns: str) -> tuple[str, ...]:
    """Rebuild ``table`` with ``store_id`` in its key (the same SQL on SQLite and PostgreSQL)."""
    return (
        create.format(name=f"{table}_v2"),
        f"INSERT INTO {table}_v2 ({columns}) SELECT {columns} FROM {table}",
        f"DROP TABLE {table}",
        f"ALTER TABLE {table}_v2 RENAME TO {table}",
    )


# Release 2's upgrade of a version 1 database, as it ran it.
VERSION_1_TO_2 = (
    *_rekeyed("streams", _STREAMS, "device_id, stream, last_seq, last_ts, backlog, updated_at"),
    *_rekeyed("batches", _BATCHES, "device_id, stream, first_seq, last_seq, count, digest, received_at"),
    *_rekeyed("readings", _READINGS, "device_id, stream, seq, ts, line"),
    "ALTER TABLE documents ADD COLUMN store_id TEXT NOT NULL DEFAULT ''",
)


def upgrade() -> None:
    bind = op.get_bind()
    if sa.inspect(bind).has_table("schema_version"):
        # cloud_sync.db.refuse_unknown has let only versions 1 and 2 through.
        if bind.exec_driver_sql("SELECT max(version) FROM schema_version").scalar() == 1:
            for statement in VERSION_1_TO_2:
                op.execute(statement)
        op.execute("DELETE FROM schema_version")
        if bind.dialect.name == "sqlite":
            # SQLite lets a PRIMARY KEY column without NOT NULL hold NULL: these small tables are
            # rebuilt as the model has them (their DOUBLE PRECISION is SQLite's REAL, like Double).
            for table, key in (("schema_version", "version"), ("devices", "id"), ("operators", "name")):
                with op.batch_alter_table(table, recreate="always") as batch:
                    batch.alter_column(key, nullable=False)
    else:
        _create()
    op.execute(sa.text("INSERT INTO schema_version (version) VALUES (:v)").bindparams(v=GUARD_VERSION))


def _create() -> None:
    text, double, bigint, no_store = sa.Text, sa.Double, sa.BigInteger, sa.text("''")
    op.create_table("schema_version", sa.Column("version", sa.Integer, primary_key=True))
    op.create_table(
        "devices",
        sa.Column("id", text, primary_key=True),
        sa.Column("secret_hash", text, nullable=False),
        sa.Column("created_at", double, nullable=False),
        sa.Column("revoked_at", double),
        sa.Column("last_seen", double),
    )
    op.create_table(
        "operators",
        sa.Column("name", text, primary_key=True),
        sa.Column("secret_hash", text, nullable=False),
        sa.Column("created_at", double, nullable=False),
        sa.Column("revoked_at", double),
    )
    op.create_table(
        "streams",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("stream", text, primary_key=True),
        sa.Column("store_id", text, primary_key=True, server_default=no_store),
        sa.Column("last_seq", bigint, nullable=False),
        sa.Column("last_ts", double),
        sa.Column("backlog", bigint, nullable=False),
        sa.Column("updated_at", double, nullable=False),
    )
    op.create_table(
        "batches",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("stream", text, primary_key=True),
        sa.Column("store_id", text, primary_key=True, server_default=no_store),
        sa.Column("first_seq", bigint, primary_key=True),
        sa.Column("last_seq", bigint, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("digest", text, nullable=False),
        sa.Column("received_at", double, nullable=False),
    )
    op.create_table(
        "readings",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("stream", text, primary_key=True),
        sa.Column("store_id", text, primary_key=True, server_default=no_store),
        sa.Column("seq", bigint, primary_key=True),
        sa.Column("ts", double, nullable=False),
        sa.Column("line", text, nullable=False),
    )
    op.create_table(
        "documents",
        sa.Column("device_id", text, primary_key=True),
        sa.Column("stream", text, primary_key=True),
        sa.Column("key", text, primary_key=True),
        sa.Column("seq", bigint, nullable=False),
        sa.Column("ts", double),
        sa.Column("data", text, nullable=False),
        sa.Column("store_id", text, nullable=False, server_default=no_store),
    )
    op.create_index("documents_ts", "documents", ["device_id", "stream", "ts"])


def downgrade() -> None:
    raise NotImplementedError("the aggregator's schema only moves forward (restore a backup to go back)")
