"""Energy-sharing communities (issue 14): communities, members over time, positions, pending
ticks, ticks with versions, append-only trades and running balances (cloud_sync/schema/community.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text, big, integer, double = sa.Text, sa.BigInteger, sa.Integer, sa.Double
    op.create_table(
        "communities",
        sa.Column("id", text, primary_key=True),
        sa.Column("name", text, nullable=False),
        sa.Column("rule", text, nullable=False),
        sa.Column("feed_in_ueur_kwh", big, nullable=False),
        sa.Column("grid_import_ueur_kwh", big, nullable=False),
        sa.Column("fee_ueur_kwh", big, nullable=False),
        sa.Column("fixed_price_ueur_kwh", big),
        sa.Column("tick_s", integer, nullable=False),
        sa.Column("created_at", double, nullable=False),
    )
    op.create_table(
        "community_members",
        sa.Column("community_id", text, sa.ForeignKey("communities.id"), primary_key=True),
        sa.Column("member_id", text, primary_key=True),
        sa.Column("valid_from", big, primary_key=True),
        sa.Column("valid_to", big),
        sa.Column("device_id", text),
        sa.Column("role", text, nullable=False),
        sa.Column("pv_wp", big, nullable=False),
        sa.Column("battery_wh", big, nullable=False),
        sa.Column("inverter_w", big, nullable=False),
        sa.Column("export_limit_w", big),
        sa.Column("ask_ueur_kwh", big),
        sa.Column("bid_ueur_kwh", big),
        sa.Column("order_posted_ms", big),
    )
    op.create_table(
        "community_positions",
        sa.Column("community_id", text, sa.ForeignKey("communities.id"), primary_key=True),
        sa.Column("member_id", text, primary_key=True),
        sa.Column("tick_start", big, primary_key=True),
        sa.Column("import_wh", big, nullable=False),
        sa.Column("export_wh", big, nullable=False),
        sa.Column("received_at", double, nullable=False),
    )
    op.create_table(
        "community_pending",
        sa.Column("community_id", text, sa.ForeignKey("communities.id"), primary_key=True),
        sa.Column("tick_start", big, primary_key=True),
    )
    op.create_table(
        "community_ticks",
        sa.Column("community_id", text, sa.ForeignKey("communities.id"), primary_key=True),
        sa.Column("tick_start", big, primary_key=True),
        sa.Column("version", integer, primary_key=True),
        sa.Column("rule", text, nullable=False),
        sa.Column("feed_in_ueur_kwh", big, nullable=False),
        sa.Column("grid_import_ueur_kwh", big, nullable=False),
        sa.Column("fee_ueur_kwh", big, nullable=False),
        sa.Column("positions_sha256", text, nullable=False),
        sa.Column("trades_sha256", text, nullable=False),
        sa.Column("trades", integer, nullable=False),
        sa.Column("shared_wh", big, nullable=False),
        sa.Column("matched_at", double, nullable=False),
        sa.Column("instance", text, nullable=False),
    )
    op.create_table(
        "community_trades",
        sa.Column("community_id", text, primary_key=True),
        sa.Column("tick_start", big, primary_key=True),
        sa.Column("version", integer, primary_key=True),
        sa.Column("seq", integer, primary_key=True),
        sa.Column("seller", text, nullable=False),
        sa.Column("buyer", text, nullable=False),
        sa.Column("wh", big, nullable=False),
        sa.Column("price_ueur_kwh", big, nullable=False),
        sa.Column("fee_ueur_kwh", big, nullable=False),
        sa.ForeignKeyConstraint(["community_id", "tick_start", "version"],
                                ["community_ticks.community_id", "community_ticks.tick_start", "community_ticks.version"]),
    )
    op.create_table(
        "community_balances",
        sa.Column("community_id", text, sa.ForeignKey("communities.id"), primary_key=True),
        sa.Column("member_id", text, primary_key=True),
        *(sa.Column(c, big, nullable=False) for c in ("sold_wh", "bought_wh", "revenue_neur", "cost_neur", "fee_neur",
                                                       "saving_neur")),
    )


def downgrade() -> None:
    for table in ("community_balances", "community_trades", "community_ticks", "community_pending",
                  "community_positions", "community_members", "communities"):
        op.drop_table(table)
