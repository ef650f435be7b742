"""How long ``nattery-cloud serve`` takes to start: time until it listens, the CPU it has used by
then and its peak resident memory, on a database already at the schema head (the usual restart,
and every aggregator the tests start after a module's first) on SQLite and PostgreSQL.

    python -m tools.bench.startup [--starts 10]

Prints one line per backend and, last, one JSON object with the medians of the starts. The
database is created and migrated before the first start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cloud_sync.db import connect
from tools.bench.aggregator import cpu_s, peak_rss_mb, pg_database, serve, stop


def starts(target: str, log: Path, count: int) -> dict[str, float]:
    """Medians over ``count`` starts of the aggregator on ``target`` (migrated beforehand)."""
    asyncio.run(_migrate(target))
    listen, cpu, rss = [], [], []
    for _ in range(count):
        began = time.monotonic()
        proc, _port = serve(target, log, log_level="warning")
        listen.append(time.monotonic() - began)
        cpu.append(cpu_s(proc.pid))
        rss.append(peak_rss_mb(proc.pid))
        stop(proc)
    return {"listen_s": round(statistics.median(listen), 3), "cpu_s": round(statistics.median(cpu), 3),
            "peak_rss_mb": round(statistics.median(rss), 1)}


async def _migrate(target: str) -> None:
    await (await connect(target)).close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=10, help="starts per backend")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "aggregator.log"
        result["sqlite"] = starts(str(Path(tmp) / "cloud.db"), log, args.starts)

        async def pg_url() -> None:
            async with pg_database("nattery_bench_startup") as url:
                if url is not None:
                    result["postgresql"] = await asyncio.to_thread(starts, url, log, args.starts)

        asyncio.run(pg_url())
    for backend, figures in result.items():
        print(f"{backend}: listening after {figures['listen_s']} s, {figures['cpu_s']} s of CPU, "
              f"peak RSS {figures['peak_rss_mb']} MB (median of {args.starts} starts)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
