"""Fixtures shared by the modules of tests/device."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cloud_sync.aggregator import _pg_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The PostgreSQL database behind ``cloud_target`` for the sync modules (test_sync*.py): one
    per test process, created and migrated once instead of once per module, as each module
    uploads under device ids of its own."""
    yield from _pg_database()
