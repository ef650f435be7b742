"""The SQLite store: schema, migrations and every query. No other module writes SQL.

The database lives on the SD card of a Raspberry Pi, shared by the bridge and app processes:
WAL mode so readers never block the writer, batched writes (one transaction per batch) to spare
the card, and named forward migrations recorded in ``schema_version`` so an older database is
upgraded in place and a database from a newer release is refused instead of corrupted.

``Store`` is synchronous; async code uses :class:`AsyncStore`, which runs every call on one
dedicated thread that owns the connection (the aiosqlite pattern), so the event loop never blocks.

Layout: :mod:`~device.store.schema` (tables and migrations), :mod:`~device.store.core` (the
connection and write transactions), :mod:`~device.store.reserve` (the disk-full reserve), one
module of queries per subject (``readings``, ``energy``, ``market``, ``plans``, ``events``,
``outbox``, ``retention``, ``sessions``) combined in :mod:`~device.store.database`, and
:mod:`~device.store.async_store`.
"""

from device.store.async_store import AsyncStore
from device.store.database import Store
from device.store.events import EVENT_LEVELS
from device.store.records import Reading, Retention, StoreError, StoreFull
from device.store.reserve import RESERVE_MAX_BYTES
from device.store.schema import MIGRATIONS, ROLE_COLUMNS

__all__ = [
    "EVENT_LEVELS",
    "MIGRATIONS",
    "RESERVE_MAX_BYTES",
    "ROLE_COLUMNS",
    "AsyncStore",
    "Reading",
    "Retention",
    "Store",
    "StoreError",
    "StoreFull",
]
