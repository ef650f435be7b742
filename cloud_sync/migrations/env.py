"""Alembic's environment for the aggregator.

The service runs it from :meth:`cloud_sync.db.Database.migrate`, handing over its connection
(already in the migration's transaction, holding the migration lock). From the ``alembic``
command line the database is ``-x url=<SQLite path or postgresql:// URL>`` or
``$NATTERY_CLOUD_DB``, opened the way the service opens it, under the same lock.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection

from cloud_sync import db
from cloud_sync.schema import compare_type, load_all

target_metadata = load_all()


def run_migrations(connection: Connection) -> None:
    db.refuse_unknown(connection, context.script)
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=compare_type)
    with context.begin_transaction():
        context.run_migrations()


async def run_from_command_line(target: str) -> None:
    database = db.Database(db.create_engine(target), target)
    try:
        async with database.migration_lock() as conn:
            await conn.run_sync(run_migrations)
    finally:
        await database.close()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    target = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("NATTERY_CLOUD_DB")
    if not target:
        raise SystemExit("name the database: alembic -x url=<SQLite path or postgresql:// URL> ... "
                         "(or set NATTERY_CLOUD_DB)")
    if context.is_offline_mode():
        raise SystemExit("offline (--sql) migrations are not supported: run them against the database")
    asyncio.run(run_from_command_line(target))
