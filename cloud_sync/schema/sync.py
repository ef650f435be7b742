"""What the sync stores: devices and operators, per-stream positions, batches, readings, documents.

Tables per device stream are keyed by the device's store too (``store_id``, "" for stores older
than identities): a device whose SD card was replaced numbers its items from 1 again, in a
stream of its own, so the new store neither skips its first items nor overwrites the old ones.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Index, Integer, Table, Text, text

from cloud_sync.schema import metadata

# Releases before Alembic kept their schema version here; it holds 3 now, which they refuse,
# so an older release cannot write into a schema it does not know (migration 0001).
schema_version = Table("schema_version", metadata, Column("version", Integer, primary_key=True))

devices = Table(
    "devices", metadata,
    Column("id", Text, primary_key=True),
    Column("secret_hash", Text, nullable=False),  # scrypt, salted (cloud_sync.registry)
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
    Column("last_seen", Double),
)

operators = Table(
    "operators", metadata,
    Column("name", Text, primary_key=True),
    Column("secret_hash", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
)

# Per device, stream and store: the highest sequence stored, the newest item time and the
# backlog the device reported with its last batch. Its row lock serialises ingest.
streams = Table(
    "streams", metadata,
    Column("device_id", Text, primary_key=True),
    Column("stream", Text, primary_key=True),
    Column("store_id", Text, primary_key=True, server_default=text("''")),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_ts", Double),
    Column("backlog", BigInteger, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# Every accepted batch, so an exact retry is recognised (same range and digest).
batches = Table(
    "batches", metadata,
    Column("device_id", Text, primary_key=True),
    Column("stream", Text, primary_key=True),
    Column("store_id", Text, primary_key=True, server_default=text("''")),
    Column("first_seq", BigInteger, primary_key=True),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("digest", Text, nullable=False),
    Column("received_at", Double, nullable=False),
)

# Reading items exactly as the device sent them (``line`` is the item's JSON line).
readings = Table(
    "readings", metadata,
    Column("device_id", Text, primary_key=True),
    Column("stream", Text, primary_key=True),
    Column("store_id", Text, primary_key=True, server_default=text("''")),
    Column("seq", BigInteger, primary_key=True),
    Column("ts", Double, nullable=False),
    Column("line", Text, nullable=False),
)

# The latest version of each document (energy slot, settlement, EDI file), whichever store sent it.
documents = Table(
    "documents", metadata,
    Column("device_id", Text, primary_key=True),
    Column("stream", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("ts", Double),
    Column("data", Text, nullable=False),
    Column("store_id", Text, nullable=False, server_default=text("''")),
    Index("documents_ts", "device_id", "stream", "ts"),
)
