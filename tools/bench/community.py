"""Benchmark: matching and settling community ticks, every rule, one JSON line.

    python -m tools.bench.community --members 10000 --ticks 50 [--seed 1] [--db TARGET]

A random community (``--seed``): 60 % prosumers with 3–30 kW inverters (a fifth of them with
an export limit), the rest consumers; in each tick every member has a random net position (a
prosumer exports with probability one half, up to 3 kWh; anyone may import up to 2 kWh) and a
third of the members keep standing limit orders at random prices, posted at random times in the
day before. Each tick is timed from its
positions to its settled balances (book, matching, the settlement's checks and sums), per rule;
and this process's CPU time beside the wall clock (the machine is shared); then every tick is run
again and its trades' digest compared (``replay_identical``). The
conservation error adds, over all ticks, Wh sold that nobody bought and Wh sold or bought
beyond a member's surplus or deficit. With ``--db`` (a SQLite file or a ``postgresql://`` URL)
each rule also runs as the aggregator runs it: a community of its own with the members and
every tick's positions stored, then each tick matched and settled in its own transaction
(members and positions read, trades inserted, balances updated): ``db_tick_ms_p50/p99``, and
this process's CPU for it, ``db_tick_cpu_ms_p50/p99``; ``db_trades_identical``: every tick's
stored trades have the digest of the trades matched in memory; ``db_conservation_error_wh``:
Wh sold that nobody bought, over the stored balances.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import numpy as np

from cloud_sync.community.model import Member, Order, Position, Role, Tick, TickPrices, members_by_id
from cloud_sync.community.rules import RULES
from cloud_sync.community.settle import run_tick

START = 1_767_225_600
PRICES = TickPrices(feed_in=79_400, grid_import=320_000, fee=10_000)


def community(n: int, rng: np.random.Generator) -> list[Member]:
    prosumer = rng.random(n) < 0.6
    inverter = rng.integers(3_000, 30_001, n)
    limited = rng.random(n) < 0.2
    limit = (inverter * rng.uniform(0.3, 0.9, n)).astype(int)
    return [
        Member(f"DE{i:09d}", Role.PROSUMER if prosumer[i] else Role.CONSUMER,
               pv_wp=int(inverter[i]) if prosumer[i] else 0, inverter_w=int(inverter[i]) if prosumer[i] else 0,
               export_limit_w=int(limit[i]) if prosumer[i] and limited[i] else None)
        for i in range(n)
    ]


def ticks(members: list[Member], count: int, rng: np.random.Generator) -> list[Tick]:
    n = len(members)
    prosumer = np.array([m.role is Role.PROSUMER for m in members])
    # standing orders, as members keep them in the database (the same in every tick)
    priced = rng.random(n) < 1 / 3
    ask = rng.integers(60_000, 330_000, n)
    bid = rng.integers(60_000, 330_000, n)
    posted = START * 1000 - rng.integers(0, 86_400_000, n)
    asks = [Order(int(ask[i]), int(posted[i])) if priced[i] else None for i in range(n)]
    bids = [Order(int(bid[i]), int(posted[i])) if priced[i] else None for i in range(n)]
    out = []
    for k in range(count):
        export = np.where(prosumer & (rng.random(n) < 0.5), rng.integers(0, 3_001, n), 0)
        imports = np.where(export == 0, rng.integers(0, 2_001, n), 0)
        out.append(Tick(START + 900 * k, PRICES, tuple(
            Position(m.id, int(imports[i]), int(export[i]), asks[i], bids[i]) for i, m in enumerate(members)
        )))
    return out


async def in_database(target: str, rule: str, members: list[Member],
                      period: list[Tick]) -> tuple[list[float], list[float], list[str], int]:
    """Milliseconds per tick to match and settle it in the database (see the module): wall
    clock, and this process's CPU (the database server's own CPU not included); the digest of
    each tick's stored trades; and the Wh the stored balances sold that they did not buy."""
    from cloud_sync.community import ledger, members as stored, positions
    from cloud_sync.db import connect

    db = await connect(target)
    try:
        community = stored.Community(f"bench-{rule}-{uuid.uuid4().hex[:8]}", "benchmark", rule, PRICES)
        orders = {p.member: p for p in period[0].positions}
        async with db.begin() as conn:
            await stored.create(conn, community)
            await stored.join_new(conn, community, [stored.Membership(m, START, ask=orders[m.id].ask, bid=orders[m.id].bid)
                                                    for m in members])
        for tick in period:
            async with db.begin() as conn:
                await positions.store(conn, community, [positions.Metered(p.member, tick.start, p.import_wh, p.export_wh)
                                                        for p in tick.positions])
        times, cpu, digests = [], [], []
        for tick in period:
            t0, c0 = time.perf_counter(), time.process_time()
            async with db.begin() as conn:
                outcome = await ledger.match_tick(conn, community, tick.start, "bench")
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            digests.append(outcome.trades_sha256)
        async with db.read() as conn:
            balances = await ledger.balances(conn, community.id)
        return times, cpu, digests, abs(sum(int(b["sold_wh"]) - int(b["bought_wh"]) for b in balances))
    finally:
        await db.close()


def bench(n_members: int, n_ticks: int, seed: int, target: str | None = None) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    members = community(n_members, rng)
    by_id = members_by_id(members)
    period = ticks(members, n_ticks, rng)
    rules: dict[str, object] = {}
    for name in RULES:
        times, cpu, digests, trades, error, shared = [], [], [], 0, 0, 0
        for tick in period:
            t0, c0 = time.perf_counter(), time.process_time()
            result = run_tick(tick, by_id, name)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            digests.append(result.digest())
            trades += len(result.trades)
            error += result.conservation_error_wh
            shared += int(result.trades.wh.sum())
        replay = [run_tick(tick, by_id, name).digest() for tick in period]
        figures: dict[str, object] = {}
        if target is not None:
            db_times, db_cpu, db_digests, db_error = asyncio.run(in_database(target, name, members, period))
            figures = {"db_trades_identical": db_digests == digests, "db_conservation_error_wh": db_error,
                       "db_tick_ms_p50": round(float(np.percentile(db_times, 50)), 1),
                       "db_tick_ms_p99": round(float(np.percentile(db_times, 99)), 1),
                       "db_tick_cpu_ms_p50": round(float(np.percentile(db_cpu, 50)), 1),
                       "db_tick_cpu_ms_p99": round(float(np.percentile(db_cpu, 99)), 1)}
        rules[name] = {
            "tick_ms_p50": round(float(np.percentile(times, 50)), 2),
            "tick_ms_p99": round(float(np.percentile(times, 99)), 2),
            "tick_cpu_ms_p99": round(float(np.percentile(cpu, 99)), 2),
            "trades": trades,
            "shared_kwh": round(shared / 1000, 1),
            "conservation_error_wh": error,
            "replay_identical": replay == digests,
            **figures,
        }
        print(f"{name:15s} p50 {rules[name]['tick_ms_p50']:8.2f} ms  p99 {rules[name]['tick_ms_p99']:8.2f} ms  "  # type: ignore[index]
              f"trades {trades:8d}  shared {shared / 1000:10.1f} kWh  error {error} Wh  replay {replay == digests}"
              + "".join(f"  {k} {v}" for k, v in figures.items()))
    return {"members": n_members, "ticks": n_ticks, "seed": seed, "database": target and target.split("://")[0],
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2), "rules": rules}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10_000, help="community size")
    parser.add_argument("--ticks", type=int, default=50, help="quarter-hours to match per rule")
    parser.add_argument("--seed", type=int, default=1, help="random community and positions")
    parser.add_argument("--db", help="also match and settle in this aggregator database (SQLite file or postgresql:// URL)")
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    result = bench(args.members, args.ticks, args.seed, args.db)
    result["load_avg_1m_before"] = load_before
    print(f"{args.members} members, {args.ticks} ticks; load average {load_before} → {result['load_avg_1m']} "
          f"on {result['cpus']} CPUs")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
