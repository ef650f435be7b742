"""Balance groups (issue 13): settlement results found by their run, without a primary key.

``settlement_results`` loses its primary key (run, metering location, slot): maintaining that
text B-tree cost 3.3 of the 4.4 s it took to write a 10,000-member day on PostgreSQL, and a
run's rows are unique by construction (one per membership slot, memberships never overlap). A
run's rows are found by ``run_id``: a BRIN index on PostgreSQL (a run's rows are written
together, so its block ranges are compact and the index costs next to nothing to maintain), a
B-tree on SQLite. SQLite cannot drop a primary key in place, so the table is rebuilt on both.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = ("run_id", "melo_id", "ts", "schedule_wh", "schedule_source", "actual_wh", "actual_source",
           "deviation_wh", "price_milli", "cost_nano")


def _move_results() -> None:
    text, bigint = sa.Text, sa.BigInteger
    op.create_table(
        "settlement_results_new",
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("melo_id", text, nullable=False),
        sa.Column("ts", bigint, nullable=False),
        sa.Column("schedule_wh", bigint, nullable=False),
        sa.Column("schedule_source", text, nullable=False),
        sa.Column("actual_wh", bigint, nullable=False),
        sa.Column("actual_source", text, nullable=False),
        sa.Column("deviation_wh", bigint, nullable=False),
        sa.Column("price_milli", bigint, nullable=False),
        sa.Column("cost_nano", bigint, nullable=False),
    )
    columns = ", ".join(COLUMNS)
    op.execute(f"INSERT INTO settlement_results_new ({columns}) SELECT {columns} FROM settlement_results")
    op.drop_table("settlement_results")
    op.rename_table("settlement_results_new", "settlement_results")


def upgrade() -> None:
    _move_results()
    op.create_index("ix_settlement_results_run_id", "settlement_results", ["run_id"], postgresql_using="brin")


def downgrade() -> None:
    raise NotImplementedError("the aggregator's schema only moves forward (restore a backup to go back)")
