"""Energy-sharing communities: members over time, metered positions, ticks, trades, balances.

Energy in Wh, prices in µEUR/kWh, money in nEUR, all BIGINT (exact; see
:mod:`cloud_sync.community`). Times are epoch seconds of a tick's start (BIGINT) or of an event
(DOUBLE). Ticks and trades are append-only: a tick matched again after late data is a new
``version`` with trades of its own; the earlier version and its trades stay.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, ForeignKey, Index, Integer, Table, Text

from cloud_sync.schema import metadata

BALANCES_FILLFACTOR = 50  # per cent of a page filled by inserts (PostgreSQL; see community_balances)

communities = Table(
    "communities", metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("rule", Text, nullable=False),  # cloud_sync.community.model.RULE_NAMES
    Column("feed_in_ueur_kwh", BigInteger, nullable=False),
    Column("grid_import_ueur_kwh", BigInteger, nullable=False),
    Column("fee_ueur_kwh", BigInteger, nullable=False),
    Column("fixed_price_ueur_kwh", BigInteger),  # greedy and proportional; NULL: the band's middle
    Column("tick_s", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    # A new random value with every change of the community's memberships (in the changing
    # transaction): a process that read them at one token may keep what it read while the token
    # stays (cloud_sync.community.members.roster); random, so no two databases share one.
    Column("members_token", Text, nullable=False),
)

# A member's membership interval [valid_from, valid_to) (tick starts; valid_to NULL: open) with
# its system and standing orders. A change of system or role ends one interval and starts the
# next; intervals of one member never overlap (cloud_sync.community.members).
community_members = Table(
    "community_members", metadata,
    Column("community_id", Text, ForeignKey("communities.id"), primary_key=True),
    Column("member_id", Text, primary_key=True),  # the metering location
    Column("valid_from", BigInteger, primary_key=True),
    Column("valid_to", BigInteger),
    Column("device_id", Text),  # its nattery device, if any: positions come from its energy slots
    Column("role", Text, nullable=False),
    Column("pv_wp", BigInteger, nullable=False),
    Column("battery_wh", BigInteger, nullable=False),
    Column("inverter_w", BigInteger, nullable=False),
    Column("export_limit_w", BigInteger),
    Column("ask_ueur_kwh", BigInteger),
    Column("bid_ueur_kwh", BigInteger),
    Column("order_posted_ms", BigInteger),
)

# Metered energy per member and tick; the latest value wins (a changed value of a matched
# tick makes it pending again: a correction).
community_positions = Table(
    "community_positions", metadata,
    Column("community_id", Text, ForeignKey("communities.id"), primary_key=True),
    Column("member_id", Text, primary_key=True),
    Column("tick_start", BigInteger, primary_key=True),
    Column("import_wh", BigInteger, nullable=False),
    Column("export_wh", BigInteger, nullable=False),
    Column("received_at", Double, nullable=False),
    # a tick's positions (the key leads with the member: without this, reading one tick scans
    # every position of the community)
    Index("ix_community_positions_tick", "community_id", "tick_start"),
)

# Ticks with positions not matched since they last changed.
community_pending = Table(
    "community_pending", metadata,
    Column("community_id", Text, ForeignKey("communities.id"), primary_key=True),
    Column("tick_start", BigInteger, primary_key=True),
)

# One row per matching of a tick; the primary key makes a version exist once, whichever
# instance gets there first.
community_ticks = Table(
    "community_ticks", metadata,
    Column("community_id", Text, ForeignKey("communities.id"), primary_key=True),
    Column("tick_start", BigInteger, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("rule", Text, nullable=False),
    Column("feed_in_ueur_kwh", BigInteger, nullable=False),
    Column("grid_import_ueur_kwh", BigInteger, nullable=False),
    Column("fee_ueur_kwh", BigInteger, nullable=False),
    Column("positions_sha256", Text, nullable=False),
    Column("trades_sha256", Text, nullable=False),
    Column("trades", Integer, nullable=False),
    Column("shared_wh", BigInteger, nullable=False),
    Column("matched_at", Double, nullable=False),
    Column("instance", Text, nullable=False),
)

community_trades = Table(
    "community_trades", metadata,
    Column("community_id", Text, primary_key=True),
    Column("tick_start", BigInteger, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("seller", Text, nullable=False),
    Column("buyer", Text, nullable=False),
    Column("wh", BigInteger, nullable=False),
    Column("price_ueur_kwh", BigInteger, nullable=False),
    Column("fee_ueur_kwh", BigInteger, nullable=False),
)
# No foreign key to community_ticks: trades are written only by
# cloud_sync.community.ledger.match_tick, in the transaction that has just inserted their tick's
# row with the same key, and tick rows are never deleted; on PostgreSQL the key's check of each
# row cost more than writing the row (10,000 trades: 90 of 130 ms).

# Running totals per member over the current version of every tick, changed in the
# transaction that writes the trades. Most rows change every tick: on PostgreSQL pages are
# half filled, so an update can go on the row's own page (a HOT update: no new index entry and
# the old version pruned there) instead of bloating the table and its key.
community_balances = Table(
    "community_balances", metadata,
    Column("community_id", Text, ForeignKey("communities.id"), primary_key=True),
    Column("member_id", Text, primary_key=True),
    Column("sold_wh", BigInteger, nullable=False),
    Column("bought_wh", BigInteger, nullable=False),
    Column("revenue_neur", BigInteger, nullable=False),
    Column("cost_neur", BigInteger, nullable=False),
    Column("fee_neur", BigInteger, nullable=False),
    Column("saving_neur", BigInteger, nullable=False),
    postgresql_with={"fillfactor": BALANCES_FILLFACTOR},
)
