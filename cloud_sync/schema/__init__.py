"""The aggregator's tables as SQLAlchemy Core: one :data:`metadata`, one module per domain.

Every table module registers its tables on :data:`metadata` when imported; :func:`load_all`
imports them all, so Alembic (and the tests comparing the migrated database with the model)
see the whole schema. Add a module here and to ``DOMAINS`` when a feature brings tables, and a
migration under ``cloud_sync/migrations/versions/`` that creates them (docs/aggregator.md).
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import Float, MetaData
from sqlalchemy.types import TypeEngine

# Constraint names are derived, so migrations name them the same on SQLite and PostgreSQL
# (and a later migration can drop or alter them by name).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: The table modules under ``cloud_sync.schema``.
DOMAINS = ("sync", "edi", "community", "operators", "balance")


def load_all() -> MetaData:
    """:data:`metadata` with every domain's tables registered."""
    for domain in DOMAINS:
        importlib.import_module(f"{__name__}.{domain}")
    return metadata


def compare_type(context: Any, _inspected: Any, _column: Any, inspected: TypeEngine[Any], model: TypeEngine[Any]) -> bool | None:
    """Alembic's type comparison, except that on SQLite every floating-point type is one (REAL
    affinity): the DOUBLE PRECISION of databases made before Alembic is the model's Double.
    ``False``: the same; ``None``: Alembic's own comparison decides."""
    if context.dialect.name == "sqlite" and isinstance(inspected, Float) and isinstance(model, Float):
        return False
    return None
