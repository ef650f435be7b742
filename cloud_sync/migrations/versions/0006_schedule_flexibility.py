"""Balance groups (issue 13): the flexibility around each committed schedule slot.

``schedule_slots`` gains ``flex_up_wh`` and ``flex_down_wh``: how much more and how much less
the home could import in that quarter-hour within its battery's and connection's limits, as the
device committed them (``device/schedules.py``); NULL from devices that do not send them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("schedule_slots", sa.Column("flex_up_wh", sa.BigInteger))
    op.add_column("schedule_slots", sa.Column("flex_down_wh", sa.BigInteger))


def downgrade() -> None:
    raise NotImplementedError("the aggregator's schema only moves forward (restore a backup to go back)")
