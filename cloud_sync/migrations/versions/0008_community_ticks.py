"""Community ticks at 10,000 members (issue 14): a token that changes with the memberships (so
an instance keeps the memberships it read while they stay the same), trades without a foreign
key to their tick (written only with it, in one transaction), balances with half-filled pages
on PostgreSQL (cloud_sync/schema/community.py says why for each).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_BALANCES_FILLFACTOR = 50
_TRADES_FK = "fk_community_trades_community_id_community_ticks"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("communities") as batch:
        batch.add_column(sa.Column("members_token", sa.Text))
    op.execute("UPDATE communities SET members_token = "
               + ("md5(random()::text || id)" if postgresql else "lower(hex(randomblob(16)))"))
    with op.batch_alter_table("communities") as batch:
        batch.alter_column("members_token", existing_type=sa.Text, nullable=False)
    with op.batch_alter_table("community_trades") as batch:
        batch.drop_constraint(_TRADES_FK, type_="foreignkey")
    if postgresql:  # pages written from now on (a table rewrite would lock it; autovacuum frees the rest)
        op.execute(f"ALTER TABLE community_balances SET (fillfactor = {_BALANCES_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE community_balances RESET (fillfactor)")
    with op.batch_alter_table("community_trades") as batch:
        batch.create_foreign_key(_TRADES_FK, "community_ticks", ["community_id", "tick_start", "version"],
                                 ["community_id", "tick_start", "version"])
    with op.batch_alter_table("communities") as batch:
        batch.drop_column("members_token")
