"""What the operator page keeps: the audit log of every operator action, logged-in sessions and
the key anonymous visitors' CSRF tokens derive from (shared by every instance)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, Integer, Table, Text

from cloud_sync.schema import metadata

# Append-only: the migration adds triggers that refuse UPDATE and DELETE (cloud_sync/audit.py).
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),  # epoch seconds
    Column("actor", Text, nullable=False),  # op:<name>, nattery-cloud:<user>, dev:<id> (a refused login)
    Column("action", Text, nullable=False),  # login, logout, device_add, device_revoke, config_set, ...
    Column("target", Text),
    Column("source", Text, nullable=False),  # the client's address, or the host a command ran on
    Column("outcome", Text, nullable=False),  # ok, or refused: / failed: with the reason
    Column("detail", Text),  # JSON
)

# Logged-in operator sessions, by the SHA-256 of the cookie value (never the value itself).
operator_sessions = Table(
    "operator_sessions", metadata,
    Column("key", Text, primary_key=True),
    Column("operator", Text, nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
)

operator_web_keys = Table(
    "operator_web_keys", metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),  # base64
)
