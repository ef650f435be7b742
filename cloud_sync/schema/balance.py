"""Balance groups (issue 13): the roles of market participants, balance groups and their
memberships over time, schedules, actuals, imbalance prices, and settlement runs with their
results. Participants and metering locations (linked to devices) are the EDI gateway's
(``edi_partners``, ``edi_locations`` in :mod:`cloud_sync.schema.edi`): one registry of identities.

Energy is integer Wh, prices integer milli-EUR/MWh, money integer nano-EUR (see
:mod:`cloud_sync.balance`); times are epoch seconds (slot starts are multiples of 900).
Nothing here is overwritten: a membership is ended (``end_ts`` set once), a schedule revision
or a price upload is a new row, a rerun on changed inputs is a new run version.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
)

from cloud_sync.schema import metadata
from cloud_sync.schema import edi as _edi  # noqa: F401  (the tables referred to below)

participant_roles = Table(
    "participant_roles", metadata,
    Column("participant_id", Text, ForeignKey("edi_partners.partner_id"), primary_key=True),
    Column("role", Text, primary_key=True),  # cloud_sync.balance.registry.ROLES
    Column("created_at", Double, nullable=False),
)

# What balancing needs of a metering location beyond its identity (``edi_locations``: MeLo-ID,
# MaLo-ID, the device measuring it): the connection's physical limit, for the anomaly checks.
balance_locations = Table(
    "balance_locations", metadata,
    Column("melo_id", Text, ForeignKey("edi_locations.melo_id"), primary_key=True),
    Column("connection_limit_w", BigInteger),
    Column("created_at", Double, nullable=False),
)

balance_groups = Table(
    "balance_groups", metadata,
    Column("id", Text, primary_key=True),  # the operator's identifier (e.g. the group's EIC code)
    Column("name", Text, nullable=False),
    Column("brp_id", Text, ForeignKey("edi_partners.partner_id"), nullable=False),  # balance-responsible party
    Column("created_at", Double, nullable=False),
)

group_memberships = Table(
    "group_memberships", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("melo_id", Text, ForeignKey("edi_locations.melo_id"), nullable=False),
    Column("group_id", Text, ForeignKey("balance_groups.id"), nullable=False),
    Column("start_ts", BigInteger, nullable=False),  # first slot inside
    Column("end_ts", BigInteger),  # first slot outside; NULL: open
    Column("created_at", Double, nullable=False),
    Column("ended_at", Double),  # when the end was recorded
    CheckConstraint("start_ts % 900 = 0 AND (end_ts IS NULL OR (end_ts % 900 = 0 AND end_ts > start_ts))",
                    name="quarter_hours"),
    Index("ix_group_memberships_melo_id", "melo_id", "start_ts"),
    Index("ix_group_memberships_group_id", "group_id", "start_ts"),
)

# Every version of every member's schedule: revision 0 is the day-ahead schedule, later ones
# intraday revisions; the newest revision of a slot is valid.
schedule_slots = Table(
    "schedule_slots", metadata,
    Column("melo_id", Text, primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("kind", Text, nullable=False),  # day_ahead | intraday
    Column("import_wh", BigInteger, nullable=False),
    Column("export_wh", BigInteger, nullable=False),
    Column("flex_up_wh", BigInteger),  # how much more the home could import in the slot (NULL: not sent)
    Column("flex_down_wh", BigInteger),  # how much less (i.e. more export)
    Column("created_at", Double, nullable=False),  # when the device committed it
)

# The valid schedule per member and slot: the newest revision in ``schedule_slots`` (kept up to
# date as revisions arrive, so a run joins on the key instead of searching the revisions).
schedules_in_force = Table(
    "schedules_in_force", metadata,
    Column("melo_id", Text, primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("kind", Text, nullable=False),
    Column("import_wh", BigInteger, nullable=False),
    Column("export_wh", BigInteger, nullable=False),
)

# Metered quarter-hours per source: official meter values from EDI, the device's own measurement.
actuals = Table(
    "actuals", metadata,
    Column("melo_id", Text, primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("source", Text, primary_key=True),  # edi | device
    Column("import_wh", BigInteger, nullable=False),
    Column("export_wh", BigInteger, nullable=False),
    Column("received_at", Double, nullable=False),
)

imbalance_price_series = Table(
    "imbalance_price_series", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),  # e.g. "reBAP"; a new upload under a name supersedes the older
    Column("resolution_s", Integer, nullable=False),
    Column("first_ts", BigInteger, nullable=False),
    Column("end_ts", BigInteger, nullable=False),
    Column("digest", Text, nullable=False),  # SHA-256 of the file as uploaded
    Column("uploaded_at", Double, nullable=False),
    Index("ix_imbalance_price_series_name", "name", "id"),
)

imbalance_prices = Table(
    "imbalance_prices", metadata,
    Column("series_id", Integer, ForeignKey("imbalance_price_series.id"), primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("price_milli", BigInteger, nullable=False),  # milli-EUR/MWh
)

settlement_runs = Table(
    "settlement_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", Text, ForeignKey("balance_groups.id"), nullable=False),
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("price_series_id", Integer, ForeignKey("imbalance_price_series.id"), nullable=False),
    Column("anomalies", Text, nullable=False),  # the operator's choice: flag | exclude | substitute
    Column("input_digest", Text, nullable=False),
    Column("results_digest", Text, nullable=False),
    Column("members", Integer, nullable=False),
    Column("slots", Integer, nullable=False),
    Column("schedule_wh", BigInteger, nullable=False),
    Column("actual_wh", BigInteger, nullable=False),
    Column("deviation_wh", BigInteger, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("group_id", "period_start", "period_end", "version", name="uq_settlement_runs_version"),
)

# One row per member slot of a run. No primary key: a run's rows are unique by construction (one
# per membership slot, and memberships never overlap), and the (run, location, slot) B-tree cost
# three quarters of a 10,000-member run's write. A run is written in one go, so on PostgreSQL a
# BRIN index finds its rows at next to no cost to maintain (a B-tree on SQLite).
settlement_results = Table(
    "settlement_results", metadata,
    Column("run_id", Integer, nullable=False),
    Column("melo_id", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("schedule_wh", BigInteger, nullable=False),
    Column("schedule_source", Text, nullable=False),
    Column("actual_wh", BigInteger, nullable=False),
    Column("actual_source", Text, nullable=False),
    Column("deviation_wh", BigInteger, nullable=False),
    Column("price_milli", BigInteger, nullable=False),
    Column("cost_nano", BigInteger, nullable=False),
    Index("ix_settlement_results_run_id", "run_id", postgresql_using="brin"),
)

settlement_anomalies = Table(
    "settlement_anomalies", metadata,
    Column("run_id", Integer, ForeignKey("settlement_runs.id"), primary_key=True),
    Column("n", Integer, primary_key=True),
    Column("melo_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("start_ts", BigInteger, nullable=False),
    Column("end_ts", BigInteger, nullable=False),
    Column("detail", Text, nullable=False),
)
