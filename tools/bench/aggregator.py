"""What the aggregator benchmarks share: starting ``nattery-cloud serve``, a fresh PostgreSQL
database per run, registering devices, and a process's CPU and peak memory from ``/proc``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from cloud_sync import registry
from cloud_sync.db import connect
from device.ports import free_port, wait_for_port

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def cloud_command() -> list[str]:
    return [sys.executable, "-m", "cloud_sync"]


def serve(target: str, log: Path, *options: str, log_level: str = "info") -> tuple[subprocess.Popen[bytes], int]:
    """Start ``nattery-cloud serve`` (with ``options``) on a free port of 127.0.0.1 and wait
    until it listens; returns the process and its port. Its log is appended to ``log``."""
    port = free_port()
    proc = subprocess.Popen(
        [*cloud_command(), "--log-level", log_level, "serve", "--db", target, "--port", str(port), *options],
        stdout=subprocess.DEVNULL, stderr=log.open("a"),
    )
    try:
        wait_for_port(port, timeout=30)
    except TimeoutError:
        proc.kill()
        raise RuntimeError(f"the aggregator did not start: {log.read_text()[-2000:]}") from None
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(30)


async def register(target: str, names: Sequence[str], kind: registry.Kind = "dev", parallel: int = 8) -> list[str]:
    """Register each of ``names``; their credentials, in the same order."""
    db = await connect(target)
    gate = asyncio.Semaphore(parallel)

    async def one(name: str) -> str:
        async with gate:
            return await registry.add(db, kind, name)

    try:
        return list(await asyncio.gather(*(one(name) for name in names)))
    finally:
        await db.close()


@asynccontextmanager
async def pg_database(prefix: str) -> AsyncIterator[str | None]:
    """A fresh PostgreSQL database at ``PG_ADMIN``'s server (its URL), dropped afterwards;
    None (and a line saying why) when no PostgreSQL answers there."""
    import asyncpg

    try:
        admin = await asyncpg.connect(PG_ADMIN, timeout=3)
    except Exception as exc:  # noqa: BLE001 — any failure means "no PostgreSQL here"
        print(f"PostgreSQL not reachable at {PG_ADMIN} ({exc}); skipping the PostgreSQL run")
        yield None
        return
    name = f"{prefix}_{os.getpid()}"
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
