"""Test parts for the cloud sync: a real ``nattery-cloud serve`` process and databases.

Import the fixtures into a test module (``from tests.cloud_sync.aggregator import ...``).
``cloud_target`` is parametrised over SQLite and PostgreSQL; the PostgreSQL variant gets a
fresh database per test on 127.0.0.1:5432 (``$TEST_POSTGRES_URL`` to change). When no server answers it
fails where PostgreSQL is required (``CI`` set, as ``.ci/run`` starts a server, or
``TEST_POSTGRES_URL`` given) and is skipped, saying why, elsewhere.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud_sync import registry
from sqlalchemy import Executable, select

from cloud_sync.db import Database, connect
from cloud_sync.schema import sync as schema
from tests.conftest import free_port, wait_for_server

PG_ADMIN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: Where PostgreSQL must be there (CI, whose .ci/run starts one, or a URL given on purpose), an
#: unreachable server fails the PostgreSQL variants instead of skipping them.
PG_REQUIRED = bool(os.environ.get("CI")) or "TEST_POSTGRES_URL" in os.environ


_LOOP: asyncio.AbstractEventLoop | None = None


def run(coro: Any) -> Any:
    """Run a coroutine to completion on the helpers' own loop, in a thread of its own, so that
    sync fixtures and async tests (which already run a loop) can both use these helpers. The
    loop lives as long as the test process: the databases opened on it stay open (``_with_db``)."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
        threading.Thread(target=_LOOP.run_forever, name="aggregator-helpers", daemon=True).start()
    return asyncio.run_coroutine_threadsafe(coro, _LOOP).result()


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards."""
    name = f"nattery_test_{uuid.uuid4().hex[:12]}"
    try:
        run(_admin(f"CREATE DATABASE {name}"))
    except Exception as exc:  # noqa: BLE001 — any failure means the server is not usable here
        reason = f"PostgreSQL variant: no server at {PG_ADMIN} ({type(exc).__name__}: {exc})"
        if PG_REQUIRED:
            pytest.fail(f"{reason}; required because CI or TEST_POSTGRES_URL is set (.ci/run starts one)")
        pytest.skip(reason)
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    yield url
    run(_forget(url))
    run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    yield from _pg_database()


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database of the test's own."""
    yield from _pg_database()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def cloud_target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One aggregator database per test module and backend; tests use their own device ids."""
    if request.param == "sqlite":
        target = str(tmp_path_factory.mktemp("cloud") / "cloud.db")
        yield target
        run(_forget(target))
    else:
        yield str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=BACKENDS)
def empty_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the test's own on each backend (nothing created in it yet)."""
    if request.param == "sqlite":
        target = str(tmp_path / "cloud.db")
        yield target
        run(_forget(target))
    else:
        yield str(request.getfixturevalue("empty_pg_url"))


@dataclass
class Aggregator:
    """A ``nattery-cloud serve`` process; ``crash`` sets TEST_CLOUD_CRASH for the next start."""

    target: str
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # Every test talks from 127.0.0.1, and several try wrong credentials on purpose.
    options: tuple[str, ...] = ("--auth-failures", "10000")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, crash: str = "") -> None:
        env = {**os.environ, "TEST_CLOUD_CRASH": crash}
        with self.log_path.open("a") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cloud_sync", "--log-level", "info", "--log-format", "json",
                 "serve", "--db", self.target, "--port", str(self.port), "--order-wait-s", "1", *self.options],
                env=env, stdout=subprocess.DEVNULL, stderr=log,
            )
        wait_for_server(self.proc, self.port, self.log_path, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None

    def killed(self) -> bool:
        """True when the process died of SIGKILL (a crash hook fired)."""
        return self.proc is not None and self.proc.poll() == -signal.SIGKILL

    def add_device(self, device_id: str) -> str:
        return str(run(_registry_add(self.target, "dev", device_id)))

    def add_operator(self, name: str) -> str:
        return str(run(_registry_add(self.target, "op", name)))

    def revoke_device(self, device_id: str) -> None:
        run(_with_db(self.target, lambda db: registry.revoke(db, "dev", device_id)))

    def rows(self, device_id: str, stream: str = "readings", store: str | None = None) -> list[tuple[int, str]]:
        """``(seq, line)`` of every stored reading item (duplicates would show twice), of one
        device store or (``store=None``) of all, by store and sequence."""
        r = schema.readings.c
        query = (select(r.seq, r.line).where(r.device_id == device_id, r.stream == stream,
                                             *([] if store is None else [r.store_id == store]))
                 .order_by(r.store_id, r.seq))
        return [(int(s), str(line)) for s, line in run(_fetch(self.target, query))]

    def execute(self, statement: Executable) -> None:
        """A Core statement on the aggregator's database (to set up what an older release left)."""
        run(_fetch(self.target, statement))

    def documents(self, device_id: str, stream: str) -> dict[str, dict[str, Any]]:
        d = schema.documents.c
        query = select(d.key, d.data).where(d.device_id == device_id, d.stream == stream)
        return {k: json.loads(data) for k, data in run(_fetch(self.target, query))}

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


_DATABASES: dict[str, Database] = {}


async def _with_db(target: str, action: Any) -> Any:
    """``action(db)`` on the database at ``target``, opened (and migrated) once and kept open
    until the fixture that made it ends: opening it per query cost most of a fuzz example."""
    if target not in _DATABASES:
        _DATABASES[target] = await connect(target)
    return await action(_DATABASES[target])


async def _forget(target: str) -> None:
    """Close the helpers' connections to ``target`` (before it is dropped or deleted)."""
    db = _DATABASES.pop(target, None)
    if db is not None:
        await db.close()


async def _registry_add(target: str, kind: registry.Kind, name: str) -> str:
    return str(await _with_db(target, lambda db: registry.add(db, kind, name)))


async def _fetch(target: str, statement: Executable) -> list[tuple[Any, ...]]:
    """The rows of a Core statement (none for one that returns none)."""
    async def query(db: Database) -> list[tuple[Any, ...]]:
        async with db.begin() as conn:
            result = await conn.execute(statement)
            return [tuple(row) for row in result.all()] if result.returns_rows else []

    return list(await _with_db(target, query))


def _running(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aggregator]:
    agg = Aggregator(target, tmp_path_factory.mktemp("logs") / "aggregator.log")
    agg.start()
    yield agg
    agg.stop()
    run(_forget(target))


@pytest.fixture(scope="module")
def aggregator(cloud_target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aggregator]:
    """A running aggregator shared by a module's tests (it is stateless; the data is per device)."""
    yield from _running(cloud_target, tmp_path_factory)


@pytest.fixture(scope="module")
def sqlite_aggregator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aggregator]:
    """The same on SQLite only, for device-side scenarios where the backend plays no part."""
    yield from _running(str(tmp_path_factory.mktemp("cloud") / "cloud.db"), tmp_path_factory)


def batch_body(device: str, stream: str, items: list[dict[str, Any]], header: dict[str, Any] | None = None) -> bytes:
    """A batch built by hand (tests of what the aggregator refuses)."""
    from common import sync_protocol as protocol

    lines = [json.dumps(item).encode() for item in items]
    body, _, _ = protocol.encode(device, stream, lines, backlog=0)
    if header is None:
        return body
    head, _, rest = gzip.decompress(body).partition(b"\n")
    return gzip.compress(json.dumps({**json.loads(head), **header}).encode() + b"\n" + rest)
