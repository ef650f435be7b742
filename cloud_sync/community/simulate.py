"""Simulation runs: a synthetic community matched and settled over a period, with a summary.

A run is named by its inputs (``run_id``: a digest of the settings), so the same settings give
the same id, the same trades and the same files byte for byte; every row a run exports
carries it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from cloud_sync.community.model import CommunityError, Position, Tick, TickPrices, members_by_id
from cloud_sync.community.rules import rule as find_rule
from cloud_sync.community.settle import run_tick
from cloud_sync.community.synthetic import Household, Metered, households, load_profiles, meter

NEUR_PER_EUR = 1_000_000_000
MAX_MEMBERS = 100_000
MAX_DAYS = 366
#: 32 ct/kWh import, the EEG feed-in of 7.94 ct/kWh (device/resources/default.yaml), a fee of 1 ct/kWh.
DEFAULT_PRICES = TickPrices(feed_in=79_400, grid_import=320_000, fee=10_000)


@dataclass(frozen=True)
class Settings:
    members: int
    days: int
    seed: int
    rule: str
    start: date = date(2024, 6, 1)
    prices: TickPrices = DEFAULT_PRICES

    def __post_init__(self) -> None:
        find_rule(self.rule)
        if not 2 <= self.members <= MAX_MEMBERS:
            raise CommunityError(f"members: {self.members} is not allowed (2 to {MAX_MEMBERS})")
        if not 1 <= self.days <= MAX_DAYS:
            raise CommunityError(f"days: {self.days} is not allowed (1 to {MAX_DAYS})")
        if not 0 <= self.seed < 2**63:
            raise CommunityError(f"seed: {self.seed} is not allowed (0 to 2^63 - 1)")

    @property
    def run_id(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return "run-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Run:
    settings: Settings
    homes: list[Household]
    tick_starts: np.ndarray
    metered: Metered
    trades: dict[str, np.ndarray]  # tick_start, seq, seller, buyer, wh, price (book ids → member ids)
    totals: dict[str, np.ndarray]  # per member (homes' order): sold_wh, bought_wh, grid_*, revenue, cost, fee, saving
    digest: str

    @property
    def run_id(self) -> str:
        return self.settings.run_id


def simulate(settings: Settings, households_dir: Path) -> Run:
    profiles = load_profiles(households_dir)
    first = profiles.index_of(settings.start)
    ticks = profiles.index_of(settings.start + timedelta(days=settings.days), "end of the period") - first
    rng = np.random.default_rng(settings.seed)
    start_s = profiles.start + first * 900
    homes = households(settings.members, rng, settings.prices, start_s)
    members = members_by_id(h.member for h in homes)
    metered = meter(homes, profiles, first, ticks)
    ids = [h.member.id for h in homes]
    index = {m: j for j, m in enumerate(ids)}
    names = ("sold_wh", "bought_wh", "grid_export_wh", "grid_import_wh", "revenue", "cost", "fee", "saving")
    totals = {k: np.zeros(len(homes), np.int64) for k in names}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("tick_start", "seq", "seller", "buyer", "wh", "price")}
    digest = hashlib.sha256()
    tick_starts = start_s + 900 * np.arange(ticks, dtype=np.int64)
    for t in range(ticks):
        imports, exports = metered.import_wh[t].tolist(), metered.export_wh[t].tolist()
        positions = tuple(Position(h.member.id, imports[j], exports[j], h.ask, h.bid) for j, h in enumerate(homes))
        result = run_tick(Tick(int(tick_starts[t]), settings.prices, positions), members, settings.rule)
        where = np.array([index[m] for m in result.book.ids], np.int64)
        for k in names:
            totals[k][where] += getattr(result.balances, k)
        tr = result.trades
        parts["tick_start"].append(np.full(len(tr), tick_starts[t], np.int64))
        parts["seq"].append(np.arange(len(tr), dtype=np.int64))
        parts["seller"].append(where[tr.seller])
        parts["buyer"].append(where[tr.buyer])
        parts["wh"].append(tr.wh)
        parts["price"].append(tr.price)
        digest.update("".join(line + "\n" for line in result.lines()).encode())
    trades = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
    return Run(settings, homes, tick_starts, metered, trades, totals, digest.hexdigest())


def gini(values: np.ndarray) -> float:
    """0: everyone gains the same; 1: one member gains everything (of non-negative values)."""
    v = np.sort(values.astype(np.float64))
    total = v.sum()
    if total <= 0:
        return 0.0
    n = len(v)
    return float((2 * np.arange(1, n + 1) - n - 1) @ v / (n * total))


def summary(run: Run) -> dict[str, object]:
    """The run's figures: self-sufficiency with and without sharing, energy shared, money
    saved against the grid (feed-in for sellers, import for buyers), and how evenly."""
    m, t = run.metered, run.totals
    load = int(m.load.sum())
    grid_without = int(m.import_wh.sum())
    grid_with = int(t["grid_import_wh"].sum())
    saving = t["saving"] / NEUR_PER_EUR
    prosumers = sum(h.member.role == "prosumer" for h in run.homes)
    return {
        "run_id": run.run_id,
        "rule": run.settings.rule,
        "members": run.settings.members,
        "prosumers": prosumers,
        "seed": run.settings.seed,
        "start": run.settings.start.isoformat(),
        "days": run.settings.days,
        "load_kwh": round(load / 1000, 1),
        "pv_kwh": round(int(m.pv.sum()) / 1000, 1),
        "self_sufficiency_alone": round(1 - grid_without / load, 4),
        "self_sufficiency": round(1 - grid_with / load, 4),
        "shared_kwh": round(int(t["sold_wh"].sum()) / 1000, 1),
        "grid_import_kwh": round(grid_with / 1000, 1),
        "grid_export_kwh": round(int(t["grid_export_wh"].sum()) / 1000, 1),
        "trades": len(run.trades["wh"]),
        "mean_price_ct_kwh": round(float((run.trades["wh"] * run.trades["price"]).sum() / max(run.trades["wh"].sum(), 1)) / 10_000, 2),
        "saving_eur": round(float(saving.sum()), 2),
        "saving_per_member_mean_eur": round(float(saving.mean()), 2),
        "saving_per_member_min_eur": round(float(saving.min()), 2),
        "saving_per_member_median_eur": round(float(np.median(saving)), 2),
        "saving_per_member_max_eur": round(float(saving.max()), 2),
        "saving_gini": round(gini(saving), 3),
        "fee_eur": round(int(t["fee"].sum()) / NEUR_PER_EUR, 2),
        "trades_sha256": run.digest,
    }
