"""Reading fields of synced documents (stored as JSON text) in SQL, in each backend's dialect."""

from __future__ import annotations

import re

_FIELD = re.compile(r"[a-z_]{1,40}")


def number(kind: str, field: str, column: str = "data") -> str:
    """The SQL expression of the number ``field`` of the JSON ``column`` (NULL when absent or null)."""
    if not _FIELD.fullmatch(field):
        raise ValueError(f"field: got {field!r}, expected 1-40 of a-z _")
    if kind == "sqlite":
        return f"json_extract({column}, '$.{field}')"
    return f"(({column})::jsonb ->> '{field}')::float8"
