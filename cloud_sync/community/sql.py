"""What differs between the dialects for the community tables: the upsert (INSERT … ON
CONFLICT) of SQLAlchemy, and the bulk writes of a tick (10,000 members: SQLAlchemy's per-row
parameter handling, or one statement per row on the server, would cost more than the matching).

On PostgreSQL a bulk write is ONE statement whose rows come from ``unnest`` of one array
parameter per column (one round trip, one plan, set-based); on SQLite, in process, it is the
driver's ``executemany`` of one prepared statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Integer, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: Table) -> Any:
    """``INSERT`` for ``table`` with ``on_conflict_do_*`` on SQLite and PostgreSQL alike."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _pg_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    return "bigint" if isinstance(kind, BigInteger) else "integer" if isinstance(kind, Integer) else "text"


async def insert_rows(conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                      on_conflict: str = "") -> None:
    """Insert ``rows`` (tuples in the order of ``columns``) into ``table`` in one statement on
    PostgreSQL, in the given order; ``on_conflict`` is appended as is (e.g. ``ON CONFLICT (…) DO
    UPDATE SET …`` with ``excluded``)."""
    if not rows:
        return
    names = ", ".join(columns)
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"${k}::{_pg_type(table, c)}[]" for k, c in enumerate(columns, 1))
        # WITH ORDINALITY … ORDER BY: rows are written (and locked) in the caller's order
        statement = (f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays}) "
                     f"WITH ORDINALITY AS r({names}, k) ORDER BY k {on_conflict}")
        await conn.exec_driver_sql(statement, tuple(list(col) for col in zip(*rows, strict=True)))
    else:
        statement = f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))}) {on_conflict}"
        await conn.exec_driver_sql(statement, list(rows))
