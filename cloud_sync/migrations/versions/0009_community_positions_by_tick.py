"""Community positions indexed by tick (issue 14): matching a tick reads its positions, and the
primary key (community, member, tick) made that a scan of every position of the community.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_community_positions_tick", "community_positions", ["community_id", "tick_start"])


def downgrade() -> None:
    op.drop_index("ix_community_positions_tick", "community_positions")
