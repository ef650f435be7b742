"""The EDI gateway's tables: registered partners and metering locations, every file received
(its bytes as they arrived and the answers), its messages, and the quarter-hours taken from the
accepted ones, typed (integer Wh, never JSON text).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Boolean, Column, Double, ForeignKey, Index, Integer, LargeBinary, Table, Text, UniqueConstraint,
)

from cloud_sync.schema import metadata

# Market partners whose files the gateway takes (NAD code list: 9 GS1, 293 BDEW, 332 DVGW).
edi_partners = Table(
    "edi_partners", metadata,
    Column("partner_id", Text, primary_key=True),
    Column("qualifier", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)

# Metering locations (MeLo-ID), the market location they belong to, the device measuring them.
edi_locations = Table(
    "edi_locations", metadata,
    Column("melo_id", Text, primary_key=True),
    Column("malo_id", Text, unique=True),
    Column("device_id", Text),
    Column("created_at", Double, nullable=False),
)

# Every interchange received, exactly as received, with the gateway's answers. ``source``:
# "device" (a device's own file, posted or from its edi stream, ``name`` the device's file name)
# or "partner" (posted by an operator). ``errors``: JSON list of what the answers say.
edi_files = Table(
    "edi_files", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Double, nullable=False),
    Column("source", Text, nullable=False),
    Column("device_id", Text),
    Column("operator", Text),
    Column("name", Text),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("sender_id", Text, nullable=False),
    Column("receiver_id", Text, nullable=False),
    Column("reference", Text, nullable=False),
    Column("syntax_ok", Boolean, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("contrl", Text, nullable=False),
    Column("aperak", Text),
    Column("errors", Text, nullable=False),
    UniqueConstraint("device_id", "name"),
    Index("ix_edi_files_interchange", "sender_id", "reference"),
)

# The messages of each file (UNH … UNT) and whether they were accepted.
edi_messages = Table(
    "edi_messages", metadata,
    Column("file_id", Integer, ForeignKey("edi_files.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("reference", Text, nullable=False),
    Column("document_number", Text, nullable=False),
    Column("sender_id", Text, nullable=False),
    Column("melo_id", Text),
    Column("check_id", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("document_date", BigInteger),
    Column("period_start", BigInteger),
    Column("period_end", BigInteger),
    Column("accepted", Boolean, nullable=False),
    Index("ix_edi_messages_document", "sender_id", "document_number"),
)

# Accepted quarter-hours: per metering location, OBIS code, slot (UTC epoch) and source the
# newest value (a later file replaces an earlier one's), in Wh (kWh × 1000, exact).
edi_values = Table(
    "edi_values", metadata,
    Column("melo_id", Text, primary_key=True),
    Column("obis", Text, primary_key=True),
    Column("slot_start", BigInteger, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("wh", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("method", Text),
    Column("file_id", Integer, ForeignKey("edi_files.id"), nullable=False),
)
