"""The EDI gateway's tables (cloud_sync/schema/edi.py): partners, metering locations, files
received with their answers, their messages, and the accepted quarter-hours.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edi_partners",
        sa.Column("partner_id", sa.Text(), nullable=False),
        sa.Column("qualifier", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_edi_partners")),
    )
    op.create_table(
        "edi_locations",
        sa.Column("melo_id", sa.Text(), nullable=False),
        sa.Column("malo_id", sa.Text(), nullable=True),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("melo_id", name=op.f("pk_edi_locations")),
        sa.UniqueConstraint("malo_id", name=op.f("uq_edi_locations_malo_id")),
    )
    op.create_table(
        "edi_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=True),
        sa.Column("operator", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("receiver_id", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("syntax_ok", sa.Boolean(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("contrl", sa.Text(), nullable=False),
        sa.Column("aperak", sa.Text(), nullable=True),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edi_files")),
        sa.UniqueConstraint("device_id", "name", name=op.f("uq_edi_files_device_id")),
    )
    op.create_index("ix_edi_files_interchange", "edi_files", ["sender_id", "reference"])
    op.create_table(
        "edi_messages",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("document_number", sa.Text(), nullable=False),
        sa.Column("sender_id", sa.Text(), nullable=False),
        sa.Column("melo_id", sa.Text(), nullable=True),
        sa.Column("check_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("document_date", sa.BigInteger(), nullable=True),
        sa.Column("period_start", sa.BigInteger(), nullable=True),
        sa.Column("period_end", sa.BigInteger(), nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["edi_files.id"], name=op.f("fk_edi_messages_file_id_edi_files")),
        sa.PrimaryKeyConstraint("file_id", "position", name=op.f("pk_edi_messages")),
    )
    op.create_index("ix_edi_messages_document", "edi_messages", ["sender_id", "document_number"])
    op.create_table(
        "edi_values",
        sa.Column("melo_id", sa.Text(), nullable=False),
        sa.Column("obis", sa.Text(), nullable=False),
        sa.Column("slot_start", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("wh", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("method", sa.Text(), nullable=True),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["edi_files.id"], name=op.f("fk_edi_values_file_id_edi_files")),
        sa.PrimaryKeyConstraint("melo_id", "obis", "slot_start", "source", name=op.f("pk_edi_values")),
    )


def downgrade() -> None:
    op.drop_table("edi_values")
    op.drop_index("ix_edi_messages_document", table_name="edi_messages")
    op.drop_table("edi_messages")
    op.drop_index("ix_edi_files_interchange", table_name="edi_files")
    op.drop_table("edi_files")
    op.drop_table("edi_locations")
    op.drop_table("edi_partners")
