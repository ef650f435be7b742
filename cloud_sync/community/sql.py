"""What differs between the dialects for the community tables: the upsert (INSERT … ON
CONFLICT) of SQLAlchemy, and the placeholders of driver-level SQL, which the bulk writes of a
tick use (10,000 members: SQLAlchemy's per-row parameter handling would cost more than the
matching)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: Table) -> Any:
    """``INSERT`` for ``table`` with ``on_conflict_do_*`` on SQLite and PostgreSQL alike."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


async def executemany(conn: AsyncConnection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Driver-level ``sql`` (``$1`` placeholders, ``?1`` on SQLite) once per row."""
    if rows:
        if conn.dialect.name != "postgresql":
            sql = re.sub(r"\$(\d+)", r"?\1", sql)
        await conn.exec_driver_sql(sql, list(rows))


def values(n: int) -> str:
    return ", ".join(f"${k}" for k in range(1, n + 1))
