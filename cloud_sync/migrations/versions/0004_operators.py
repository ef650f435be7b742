"""The operator page's tables: the append-only audit log, operator sessions, the anonymous CSRF key.

The audit log refuses UPDATE and DELETE in the database itself: on SQLite a trigger per statement
kind raising an abort, on PostgreSQL one row trigger (and a statement trigger for TRUNCATE)
raising an exception. Whoever holds the database's owner role can still drop the triggers; the
log protects against the application and its operators, not against the database's owner.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REFUSAL = "audit_log is append-only"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("target", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_table(
        "operator_sessions",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("operator", sa.Text, nullable=False),
        sa.Column("csrf", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    op.create_table(
        "operator_web_keys",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{REFUSAL}: % refused', TG_OP; END $$"
        )
        op.execute("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                   "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
        op.execute("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")
    else:
        for kind in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_log_no_{kind.lower()} BEFORE {kind} ON audit_log "
                       f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}: {kind} refused'); END")


def downgrade() -> None:
    raise NotImplementedError("the aggregator's schema only moves forward (restore a backup to go back)")
