"""Reading fields of synced documents (stored as JSON text) in SQL, in each backend's dialect."""

from __future__ import annotations

import re

from sqlalchemy import ColumnElement, Double, cast, func
from sqlalchemy.dialects.postgresql import JSONB

from cloud_sync.schema.sync import documents

_FIELD = re.compile(r"[a-z_]{1,40}")


def number(kind: str, field: str) -> ColumnElement[float]:
    """The number ``field`` of a document's JSON ``data`` as a Core expression (NULL when absent
    or null): ``json_extract`` on SQLite, ``(data::jsonb ->> field)::float8`` on PostgreSQL."""
    if not _FIELD.fullmatch(field):
        raise ValueError(f"field: got {field!r}, expected 1-40 of a-z _")
    if kind == "sqlite":
        return func.json_extract(documents.c.data, f"$.{field}", type_=Double)
    return cast(cast(documents.c.data, JSONB)[field].astext, Double)
