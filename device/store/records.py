"""What the store is given and what it refuses with: retention settings, readings, errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from device.config import StoreSettings


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, corrupt file, unwritable)."""


class StoreFull(StoreError):
    """The disk stayed full after the retention policy and emergency pruning ran."""


@dataclass(frozen=True)
class Retention:
    """How long each kind of data is kept, in days (``StoreSettings`` in the configuration)."""

    readings_days: float = 30
    aggregates_days: float = 3650
    forecasts_days: float = 30
    plans_days: float = 90
    events_days: float = 365

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Retention:
        return cls(
            readings_days=settings.readings_retention_days,
            aggregates_days=settings.aggregates_retention_days,
            forecasts_days=settings.forecasts_retention_days,
            plans_days=settings.plans_retention_days,
            events_days=settings.events_retention_days,
        )


@dataclass(frozen=True)
class Reading:
    """One telemetry snapshot: epoch seconds, role values (``None`` = not read) and raw registers."""

    ts: float
    roles: Mapping[str, float | None]
    registers: Mapping[str, float | None]
