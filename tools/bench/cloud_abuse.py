"""Benchmark: what hostile uploads cost the aggregator, and what its answers give away.

    python -m tools.bench.cloud_abuse [--parallel N] [--probes N]

Starts ``nattery-cloud serve`` (SQLite, default limits) on 127.0.0.1 once per kind of gzip
bomb (see :func:`bombs`) and sends ``N`` of them in parallel, then reports the answers and
the aggregator's peak RSS (VmHWM); it starts it once more for
finally ``--probes`` sequential requests with a wrong secret for a registered device and for
an unknown one, and the median answer time of each (the same hash check runs for both, so they
should not differ by more than noise). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from common import sync_protocol as protocol
from tools.bench.aggregator import peak_rss_mb, register, serve, stop

LIMITS = ("--auth-failures", "10000")  # the probes' wrong secrets must not end in 429s


def bombs(device: str, now: float | None = None) -> dict[str, bytes]:
    """Small bodies that inflate past the 128 MB cap: one endless line, lines of junk, and
    valid reading items of almost 1 MB each (the only kind read up to the cap)."""
    now = time.time() if now is None else now
    header = json.dumps({"device": device, "stream": "readings", "first_seq": 1, "last_seq": 1,
                         "count": protocol.MAX_ITEMS, "digest": ""}).encode()
    lines_to_cap = protocol.MAX_RAW_BYTES // (protocol.MAX_LINE_BYTES - 40_000) + 2
    registers = {f"r{i}": "x" * 250 for i in range((protocol.MAX_LINE_BYTES - 40_000) // 262)}
    item = json.dumps({"seq": 0, "ts": now, "data": {"roles": {}, "registers": registers}}).encode()
    items = b"".join(b"\n" + item.replace(b'"seq": 0', b'"seq": %d' % n, 1) for n in range(1, lines_to_cap + 1))
    return {
        "one_line": gzip.compress(header + b"\n{" + b" " * (protocol.MAX_RAW_BYTES + 10) + b"}", 1),
        "junk_lines": gzip.compress(header + (b"\n" + b" " * (protocol.MAX_LINE_BYTES - 1)) * lines_to_cap, 1),
        "valid_items": gzip.compress(header + items, 1),
    }


async def _post(url: str, credential: str, body: bytes) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": protocol.CONTENT_TYPE}
    began = time.perf_counter()
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status, time.perf_counter() - began


def bomb_memory(work: Path, parallel: int) -> dict[str, Any]:
    target = str(work / "cloud.db")
    [credential] = asyncio.run(register(target, ["bomber"]))
    result: dict[str, Any] = {}
    for kind, body in bombs("bomber").items():
        proc, port = serve(target, work / "aggregator.log", *LIMITS)
        try:
            url = f"http://127.0.0.1:{port}/v1/ingest/readings"

            async def all_at_once(body: bytes = body, url: str = url) -> list[tuple[int, float]]:
                return await asyncio.gather(*(_post(url, credential, body) for _ in range(parallel)))

            answers = asyncio.run(all_at_once())
            result[kind] = {"statuses": sorted({status for status, _ in answers}),
                            "aggregator_peak_rss_mb": round(peak_rss_mb(proc.pid)),
                            "alive": proc.poll() is None, "body_kb": round(len(body) / 1024)}
        finally:
            stop(proc)
    return result


def probes(work: Path, count: int) -> dict[str, Any]:
    target = str(work / "probe.db")
    asyncio.run(register(target, ["known"]))
    proc, port = serve(target, work / "aggregator.log", *LIMITS)
    url = f"http://127.0.0.1:{port}/v1/ingest/readings"
    try:
        async def alternating() -> tuple[list[float], list[float]]:  # alternate: the load drifts
            known, unknown = [], []
            for _ in range(count):
                known.append((await _post(url, "dev.known.wrong-secret", b""))[1])
                unknown.append((await _post(url, "dev.nobody-here.wrong-secret", b""))[1])
            return known, unknown

        known, unknown = asyncio.run(alternating())
    finally:
        stop(proc)
    return {"known_wrong_ms": round(statistics.median(known) * 1000, 1),
            "unknown_ms": round(statistics.median(unknown) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--probes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nattery-bench-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {"parallel": args.parallel, **bomb_memory(work, args.parallel)}
        for kind in ("one_line", "junk_lines", "valid_items"):
            r = result[kind]
            print(f"{args.parallel} parallel {kind.replace('_', ' ')} gzip bombs ({r['body_kb']} kB each): "
                  f"answers {r['statuses']}, aggregator peak RSS {r['aggregator_peak_rss_mb']} MB, "
                  f"alive {r['alive']}")
        result["auth"] = probes(work, args.probes)
        print(f"median answer to a wrong secret: registered device {result['auth']['known_wrong_ms']} ms, "
              f"unknown device {result['auth']['unknown_ms']} ms ({args.probes} each)")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
