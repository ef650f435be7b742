"""``Store``: the synchronous store, every query of every subject on one connection."""

from __future__ import annotations

from device.store.community import CommunityQueries
from device.store.edi import EdiQueries
from device.store.energy import EnergyQueries
from device.store.market import MarketQueries
from device.store.plans import PlanQueries
from device.store.retention import RetentionQueries
from device.store.schedules import ScheduleQueries
from device.store.sessions import SessionQueries


class Store(
    RetentionQueries, EnergyQueries, EdiQueries, CommunityQueries, MarketQueries, PlanQueries, ScheduleQueries, SessionQueries
):
    """Synchronous access to ``nattery.db``. Use one instance per thread.

    The queries live in one module per subject (:mod:`device.store.readings`, ``energy``, ``edi``,
    ``market``, ``plans``, ``schedules``, ``events``, ``outbox``, ``retention``, ``sessions``); each is a part of this class,
    so every query runs on the same connection and inside the same write policy.
    """
