"""Balance groups (issue 13): participant roles, metering locations' connection limits, balance
groups and memberships, schedules (every revision and the one in force), actuals, imbalance
prices, settlement runs and their results.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text, double, bigint = sa.Text, sa.Double, sa.BigInteger
    op.create_table(
        "participant_roles",
        sa.Column("participant_id", text, sa.ForeignKey("edi_partners.partner_id"), primary_key=True),
        sa.Column("role", text, primary_key=True),
        sa.Column("created_at", double, nullable=False),
    )
    op.create_table(
        "balance_locations",
        sa.Column("melo_id", text, sa.ForeignKey("edi_locations.melo_id"), primary_key=True),
        sa.Column("connection_limit_w", bigint),
        sa.Column("created_at", double, nullable=False),
    )
    op.create_table(
        "balance_groups",
        sa.Column("id", text, primary_key=True),
        sa.Column("name", text, nullable=False),
        sa.Column("brp_id", text, sa.ForeignKey("edi_partners.partner_id"), nullable=False),
        sa.Column("created_at", double, nullable=False),
    )
    op.create_table(
        "group_memberships",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("melo_id", text, sa.ForeignKey("edi_locations.melo_id"), nullable=False),
        sa.Column("group_id", text, sa.ForeignKey("balance_groups.id"), nullable=False),
        sa.Column("start_ts", bigint, nullable=False),
        sa.Column("end_ts", bigint),
        sa.Column("created_at", double, nullable=False),
        sa.Column("ended_at", double),
        sa.CheckConstraint("start_ts % 900 = 0 AND (end_ts IS NULL OR (end_ts % 900 = 0 AND end_ts > start_ts))",
                           name="ck_group_memberships_quarter_hours"),
    )
    op.create_index("ix_group_memberships_melo_id", "group_memberships", ["melo_id", "start_ts"])
    op.create_index("ix_group_memberships_group_id", "group_memberships", ["group_id", "start_ts"])
    op.create_table(
        "schedule_slots",
        sa.Column("melo_id", text, primary_key=True),
        sa.Column("ts", bigint, primary_key=True),
        sa.Column("revision", sa.Integer, primary_key=True),
        sa.Column("kind", text, nullable=False),
        sa.Column("import_wh", bigint, nullable=False),
        sa.Column("export_wh", bigint, nullable=False),
        sa.Column("created_at", double, nullable=False),
    )
    op.create_table(
        "schedules_in_force",
        sa.Column("melo_id", text, primary_key=True),
        sa.Column("ts", bigint, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("kind", text, nullable=False),
        sa.Column("import_wh", bigint, nullable=False),
        sa.Column("export_wh", bigint, nullable=False),
    )
    op.create_table(
        "actuals",
        sa.Column("melo_id", text, primary_key=True),
        sa.Column("ts", bigint, primary_key=True),
        sa.Column("source", text, primary_key=True),
        sa.Column("import_wh", bigint, nullable=False),
        sa.Column("export_wh", bigint, nullable=False),
        sa.Column("received_at", double, nullable=False),
    )
    op.create_table(
        "imbalance_price_series",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", text, nullable=False),
        sa.Column("resolution_s", sa.Integer, nullable=False),
        sa.Column("first_ts", bigint, nullable=False),
        sa.Column("end_ts", bigint, nullable=False),
        sa.Column("digest", text, nullable=False),
        sa.Column("uploaded_at", double, nullable=False),
    )
    op.create_index("ix_imbalance_price_series_name", "imbalance_price_series", ["name", "id"])
    op.create_table(
        "imbalance_prices",
        sa.Column("series_id", sa.Integer, sa.ForeignKey("imbalance_price_series.id"), primary_key=True),
        sa.Column("ts", bigint, primary_key=True),
        sa.Column("price_milli", bigint, nullable=False),
    )
    op.create_table(
        "settlement_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_id", text, sa.ForeignKey("balance_groups.id"), nullable=False),
        sa.Column("period_start", bigint, nullable=False),
        sa.Column("period_end", bigint, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("price_series_id", sa.Integer, sa.ForeignKey("imbalance_price_series.id"), nullable=False),
        sa.Column("anomalies", text, nullable=False),
        sa.Column("input_digest", text, nullable=False),
        sa.Column("results_digest", text, nullable=False),
        sa.Column("members", sa.Integer, nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("schedule_wh", bigint, nullable=False),
        sa.Column("actual_wh", bigint, nullable=False),
        sa.Column("deviation_wh", bigint, nullable=False),
        sa.Column("cost_nano", bigint, nullable=False),
        sa.Column("created_at", double, nullable=False),
        sa.UniqueConstraint("group_id", "period_start", "period_end", "version", name="uq_settlement_runs_version"),
    )
    op.create_table(
        "settlement_results",
        sa.Column("run_id", sa.Integer, primary_key=True),
        sa.Column("melo_id", text, primary_key=True),
        sa.Column("ts", bigint, primary_key=True),
        sa.Column("schedule_wh", bigint, nullable=False),
        sa.Column("schedule_source", text, nullable=False),
        sa.Column("actual_wh", bigint, nullable=False),
        sa.Column("actual_source", text, nullable=False),
        sa.Column("deviation_wh", bigint, nullable=False),
        sa.Column("price_milli", bigint, nullable=False),
        sa.Column("cost_nano", bigint, nullable=False),
    )
    op.create_table(
        "settlement_anomalies",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("settlement_runs.id"), primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("melo_id", text, nullable=False),
        sa.Column("kind", text, nullable=False),
        sa.Column("start_ts", bigint, nullable=False),
        sa.Column("end_ts", bigint, nullable=False),
        sa.Column("detail", text, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the aggregator's schema only moves forward (restore a backup to go back)")
