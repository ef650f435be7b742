"""Benchmark the sequential Modbus queue against the simulator over a socat pty pair.

    python -m tools.bench.modbus [--cycles 100] [--transactions 10000] [--baud 115200]

The simulator runs in its own process (as the inverter is its own device) on one end of a
socat pty pair; the worker, the inverter facade and the callers run here on the other end,
with the RTU framer. Two phases:

1. Timing, at the map's own line (9600 baud, 50 ms gap for the Deye map): telemetry polls
   back to back (the worst case for commands: a telemetry read is almost always in flight)
   while 8 callers issue commands, each one CONTROL write of a setting register, at random
   moments (exponential think time, mean ``--command-interval-s`` per caller).
   ``cycle_s`` is the median time to complete one full telemetry cycle (every block of the
   map's telemetry set), commands interleaved; with a poll interval the cycle is the same,
   the line just idles in between. ``wire_bound_cycle_s`` is what the wire itself needs for
   the cycle's transactions: request and reply characters at the baud rate plus one gap each.
2. Overlap count, at ``--baud`` with the gap scaled to the same number of characters: the
   same load with short think times, until ``--transactions`` transactions; every caller
   reads back what it wrote. The simulator counts each request that arrives before the
   previous reply plus the gap has passed (``violations``).

Prints a human summary, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from device.modbus.blocks import minimum_block_count
from device.modbus.client import client_factory
from device.modbus.inverter import Inverter, Limits
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import load_map
from device.modbus.worker import ModbusWorker, Priority, ReadRequest, WriteRequest

CALLERS = 8


def bench_map(name: str, baud: int | None) -> RegisterMap:
    """The map, optionally at another baud rate with the gap kept at the same character count."""
    regmap = load_map(name)
    p = regmap.protocol
    if baud is None or baud == p.baudrate:
        return regmap
    gap_s = max(p.gap_s * p.baudrate / baud, 3.5 * p.char_s * p.baudrate / baud)
    return replace(regmap, protocol=replace(p, baudrate=baud, gap_s=gap_s))


@contextlib.contextmanager
def pty_pair(directory: Path) -> Iterator[tuple[str, str]]:
    """Two linked ptys from socat: (master side for the worker, inverter side)."""
    if shutil.which("socat") is None:
        sys.exit("socat is not installed (apt-get install socat)")
    a, b = directory / "ttyA", directory / "ttyB"
    proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline:
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(10)


def _simulator_process(name: str, baud: int | None, path: str, conn: Connection) -> None:
    """Child process: serve the map on ``path`` until told to stop, then send the stats."""
    from common import logs
    from device.simulator import Simulator

    logs.configure("error", "console")

    async def serve() -> None:
        sim = Simulator(bench_map(name, baud))
        await sim.serve_serial(path)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        stats = sim.stats.as_dict()
        await sim.close()
        conn.send(stats)

    asyncio.run(serve())


@contextlib.contextmanager
def simulator(name: str, baud: int | None, path: str) -> Iterator[Connection]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_simulator_process, args=(name, baud, path, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(30) or parent.recv() != "ready":
            raise RuntimeError("the simulator did not start")
        yield parent
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def stop_simulator(conn: Connection) -> dict[str, Any]:
    conn.send("stop")
    if not conn.poll(30):
        raise RuntimeError("the simulator did not report its stats")
    result: dict[str, Any] = conn.recv()
    return result


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank quantile; NaN without samples (a too-short run)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def command_registers(regmap: RegisterMap) -> list[tuple[int, int]]:
    """(address, highest value) of single-word writable settings, one per caller."""
    regs = [r for r in regmap.registers.values() if r.writable and r.readable and r.size == 1
            and r.min is not None and r.max is not None and r.min <= 0]
    return [(r.address, int((r.max or 0) / r.scale) if r.scale > 0 and r.offset == 0 else 0)
            for r in regs][:CALLERS]


class Load:
    """Telemetry polling plus ``CALLERS`` command callers against one worker."""

    def __init__(self, inverter: Inverter, think_s: float, verify: bool, seed: int) -> None:
        self.inverter = inverter
        self.worker = inverter.worker
        self.think_s = think_s
        self.verify = verify
        self.rng = random.Random(seed)
        self.cycles: list[float] = []
        self.commands: list[float] = []
        self.mismatches = 0
        self.failures: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def poll(self, cycles: int | None) -> None:
        while not self.stop.is_set() and (cycles is None or len(self.cycles) < cycles):
            started = time.monotonic()
            snapshot = await self.inverter.read_telemetry()
            self.cycles.append(time.monotonic() - started)
            if any(v is None for v in snapshot.registers.values()):
                self.failures["telemetry"] = self.failures.get("telemetry", 0) + 1
        self.stop.set()

    async def caller(self, address: int, high: int) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.rng.expovariate(1 / self.think_s))
                return
            value = self.rng.randint(0, high)
            started = time.monotonic()
            try:
                await self.worker.submit(WriteRequest(address, (value,)), Priority.CONTROL)
                self.commands.append(time.monotonic() - started)
                if self.verify:
                    got = await self.worker.submit(ReadRequest("holding", address, 1), Priority.ONDEMAND)
                    self.mismatches += got != (value,)
            except Exception as exc:  # noqa: BLE001 — counted and reported; a benchmark keeps going
                self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1

    async def run(self, cycles: int | None = None, transactions: int | None = None) -> None:
        tasks = [asyncio.create_task(self.poll(cycles))]
        tasks += [asyncio.create_task(self.caller(a, h)) for a, h in command_registers(self.inverter.regmap)]
        if transactions is not None:
            while self.worker.stats()["transactions"] < transactions and not self.stop.is_set():
                await asyncio.sleep(0.2)
            self.stop.set()
        await asyncio.gather(*tasks)


async def run_phase(name: str, baud: int | None, directory: Path, think_s: float, verify: bool,
                    cycles: int | None = None, transactions: int | None = None) -> dict[str, Any]:
    regmap = bench_map(name, baud)
    with pty_pair(directory) as (ours, theirs), simulator(name, baud, theirs) as conn:
        url = f"serial://{ours}"
        worker = ModbusWorker(client_factory(url, regmap.protocol), regmap.protocol, port=url)
        async with worker:
            inverter = Inverter(regmap, worker, Limits(0, 0))
            await inverter.read_telemetry()  # connected and warm
            before = worker.stats()
            load = Load(inverter, think_s, verify, seed=1)
            started = time.monotonic()
            await load.run(cycles, transactions)
            elapsed = time.monotonic() - started
            after = worker.stats()
        sim = stop_simulator(conn)
    return {"regmap": regmap, "load": load, "elapsed_s": elapsed, "before": before, "after": after, "sim": sim}


def wire_bound_cycle_s(regmap: RegisterMap, inverter_blocks: list[tuple[int, int]]) -> float:
    p = regmap.protocol
    return sum((8 + 5 + 2 * count) * p.char_s + p.gap_s for _, count in inverter_blocks)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nattery-bench-") as tmp:
        timing = await run_phase(args.map, None, Path(tmp), args.command_interval_s, verify=False,
                                 cycles=args.cycles)
        overlap = await run_phase(args.map, args.baud, Path(tmp), args.overlap_interval_s, verify=True,
                                  transactions=args.transactions)
    regmap: RegisterMap = timing["regmap"]
    load: Load = timing["load"]
    blocks = [(b.start, b.count) for b in load.inverter.telemetry_blocks]
    tx = timing["after"]["transactions"] - timing["before"]["transactions"]
    commands = len(load.commands) + sum(load.failures.values())
    olap: Load = overlap["load"]
    result = {
        "map": regmap.family,
        "baud": regmap.protocol.baudrate,
        "cycles": len(load.cycles),
        "commands": len(load.commands),
        "commands_per_s": round(len(load.commands) / timing["elapsed_s"], 2),
        "transactions_per_cycle": round((tx - commands) / len(load.cycles), 3),
        "min_transactions_per_cycle": minimum_block_count(regmap),
        "cycle_s": round(statistics.median(load.cycles), 4),
        "cycle_p90_s": round(percentile(load.cycles, 0.9), 4),
        "wire_bound_cycle_s": round(wire_bound_cycle_s(regmap, blocks), 4),
        "command_latency_p50_s": round(percentile(load.commands, 0.5), 4),
        "command_latency_p99_s": round(percentile(load.commands, 0.99), 4),
        "command_latency_max_s": round(percentile(load.commands, 1.0), 4),
        "max_transaction_s": timing["after"]["latency"]["transaction_s"]["max"],
        "gap_s": regmap.protocol.gap_s,
        "transactions": overlap["sim"]["transactions"],
        "overlap_baud": overlap["regmap"].protocol.baudrate,
        "overlap_gap_s": round(overlap["regmap"].protocol.gap_s, 5),
        "violations": timing["sim"]["violations"] + overlap["sim"]["violations"],
        "disturbed": timing["sim"]["disturbed"] + overlap["sim"]["disturbed"],
        "readback_mismatches": olap.mismatches,
        "errors": {**timing["after"]["errors"], **{f"overlap_{k}": v for k, v in overlap["after"]["errors"].items()}},
        "retries": timing["after"]["retries"] + overlap["after"]["retries"],
        "timing_transactions": timing["sim"]["transactions"],
        "timing_elapsed_s": round(timing["elapsed_s"], 1),
        "overlap_elapsed_s": round(overlap["elapsed_s"], 1),
    }
    result["targets_met"] = {
        "violations": result["violations"] == 0 and result["transactions"] >= 10_000,
        "transactions_per_cycle": result["transactions_per_cycle"] == result["min_transactions_per_cycle"],
        "cycle": result["cycle_s"] <= 1.25 * result["wire_bound_cycle_s"],
        "command_latency": result["command_latency_p99_s"]
        <= 1.5 * (result["max_transaction_s"] + result["gap_s"]),
    }
    return result


def summary(r: dict[str, Any]) -> str:
    bound = 1.5 * (r["max_transaction_s"] + r["gap_s"])
    return "\n".join([
        f"Modbus queue benchmark — map {r['map']}, simulator in its own process over a socat pty pair (RTU)",
        f"timing phase at {r['baud']} baud, gap {r['gap_s'] * 1000:.0f} ms: {r['cycles']} telemetry cycles back to back, "
        f"{CALLERS} callers, {r['commands']} commands ({r['commands_per_s']}/s)",
        f"  transactions per cycle  {r['transactions_per_cycle']} (minimum possible {r['min_transactions_per_cycle']})",
        f"  cycle                   median {r['cycle_s'] * 1000:.0f} ms, p90 {r['cycle_p90_s'] * 1000:.0f} ms; "
        f"wire bound {r['wire_bound_cycle_s'] * 1000:.0f} ms (ratio {r['cycle_s'] / r['wire_bound_cycle_s']:.2f}, target <= 1.25)",
        f"  command latency         p50 {r['command_latency_p50_s'] * 1000:.0f} ms, p99 {r['command_latency_p99_s'] * 1000:.0f} ms, "
        f"max {r['command_latency_max_s'] * 1000:.0f} ms (target p99 <= 1.5 x (max transaction "
        f"{r['max_transaction_s'] * 1000:.0f} ms + gap) = {bound * 1000:.0f} ms)",
        f"overlap phase at {r['overlap_baud']} baud, gap {r['overlap_gap_s'] * 1000:.1f} ms: {r['transactions']} transactions, "
        f"{r['violations']} violations, {r['disturbed']} disturbed, {r['readback_mismatches']} read-back mismatches",
        f"errors {r['errors'] or 'none'}, retries {r['retries']}; targets met: "
        + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["targets_met"].items()),
    ])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="deye_hybrid_1p", help="register map (default: deye_hybrid_1p)")
    parser.add_argument("--cycles", type=int, default=100, help="telemetry cycles in the timing phase")
    parser.add_argument("--transactions", type=int, default=10_000, help="transactions in the overlap phase")
    parser.add_argument("--baud", type=int, default=115200, help="emulated baud rate of the overlap phase")
    parser.add_argument("--command-interval-s", type=float, default=8.0,
                        help="mean think time of each caller between commands (timing phase)")
    parser.add_argument("--overlap-interval-s", type=float, default=0.05,
                        help="mean think time of each caller (overlap phase)")
    args = parser.parse_args(argv)
    from common import logs

    logs.configure("error", "console")
    result = asyncio.run(bench(args))
    print(summary(result))
    print(json.dumps(result).replace("NaN", "null"))
    return result


if __name__ == "__main__":
    main()
