"""A synthetic community from real profiles: households of the shared data set, varied sizes.

Each member takes one of the six household load profiles of the shared data (the standard H25
household and the five stochastic ones, ``household/``), scaled by 0.7–1.3 and moved by up to
three days either way so that members sharing a profile do not peak together, and the data
set's PV profile (per kWp, one location for the whole community). 60 % are prosumers with
3–15 kWp (inverter sized as the PV), a battery of 0, 5, 7.5, 10 or 15 kWh (none for a third),
and for 30 % of them the 60 % feed-in limit of subsidised storage. Batteries run the inverters'
own self-consumption rule (charge from surplus, discharge into the deficit, 95 % each way) and
export beyond the limit is curtailed. All draws come from one generator seeded with the run's
seed, so the same seed gives the same community and the same metered quarter-hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from cloud_sync.community.model import CommunityError, Member, Order, Role, TickPrices

BERLIN = ZoneInfo("Europe/Berlin")
PROFILES = {
    "standard": "de_household_15min_2024.csv",
    **{f"{n}p": f"stochastic/de_household_stochastic_{n}p_15min_2024.csv" for n in range(1, 6)},
}
ETA = 0.95
BATTERIES_WH = (0, 0, 5_000, 7_500, 10_000, 15_000)
Wh = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Household:
    """How a member's metered energy is made: its load profile, scale and shift."""

    member: Member
    profile: str
    load_scale: float
    shift_days: int
    ask: Order | None
    bid: Order | None


@dataclass(frozen=True)
class Profiles:
    start: int  # epoch s of the first quarter-hour
    loads: dict[str, npt.NDArray[np.float64]]  # kW per quarter-hour
    pv: npt.NDArray[np.float64]  # kW per kWp

    def index_of(self, day: date, what: str = "start") -> int:
        """The quarter-hour at which local ``day`` starts (the end of the data for the day after)."""
        at = int(datetime.combine(day, time(0), BERLIN).timestamp())
        k, rest = divmod(at - self.start, 900)
        if rest or not 0 <= k <= len(self.pv) - (what == "start"):
            raise CommunityError(f"{what}: {day} is not allowed (the profiles cover the local year 2024)")
        return k


def load_profiles(households: Path) -> Profiles:
    """The six household files of the shared data set's ``household/`` folder."""
    frames = {}
    for name, rel in PROFILES.items():
        path = households / rel
        if not path.is_file():
            raise CommunityError(f"households: {path} does not exist (the shared data set's household/ folder)")
        frames[name] = pd.read_csv(path)
    first = frames["standard"]
    start = int(pd.Timestamp(first["timestamp_utc"].iloc[0]).timestamp())
    return Profiles(start, {n: f["load_kw"].to_numpy(np.float64) for n, f in frames.items()},
                    first["pv_kw_per_kwp"].to_numpy(np.float64))


def households(n: int, rng: np.random.Generator, prices: TickPrices, start: int, prosumer_share: float = 0.6) -> list[Household]:
    """``n`` members, ids ``m00001`` … in id order. Half post standing orders (for the price
    rules): an ask between the feed-in and the band's middle, a bid between the middle and the
    import less the fee, posted during the month before ``start`` (epoch s)."""
    names = list(PROFILES)
    out = []
    for k in range(1, n + 1):
        profile = names[int(rng.integers(len(names)))]
        scale = float(rng.uniform(0.7, 1.3))
        shift = int(rng.integers(-3, 4))
        prosumer = bool(rng.random() < prosumer_share)
        pv_wp = int(rng.integers(6, 31)) * 500 if prosumer else 0
        battery = int(rng.choice(BATTERIES_WH)) if prosumer else 0
        limited = prosumer and bool(rng.random() < 0.3)
        member = Member(f"m{k:05d}", Role.PROSUMER if prosumer else Role.CONSUMER, pv_wp=pv_wp, battery_wh=battery,
                        inverter_w=pv_wp, export_limit_w=pv_wp * 6 // 10 if limited else None)
        ask = bid = None
        if rng.random() < 0.5:
            posted = start * 1000 - int(rng.integers(0, 30 * 86_400_000))
            mid = prices.midpoint()
            ask = Order(int(rng.integers(prices.low, mid + 1)), posted)
            bid = Order(int(rng.integers(mid, prices.high + 1)), posted)
        out.append(Household(member, profile, scale, shift, ask, bid))
    return out


@dataclass(frozen=True)
class Metered:
    """Per quarter-hour (rows) and member (columns), Wh: what each meter and battery saw."""

    load: Wh
    pv: Wh
    charge: Wh
    discharge: Wh
    curtailed: Wh
    import_wh: Wh
    export_wh: Wh


def meter(homes: list[Household], profiles: Profiles, first: int, ticks: int) -> Metered:
    """Quarter-hours ``first`` … ``first + ticks - 1`` of every member, batteries simulated."""
    n_total = len(profiles.pv)
    rows = np.arange(first, first + ticks)
    load = np.empty((ticks, len(homes)))
    pv = np.empty((ticks, len(homes)))
    for j, h in enumerate(homes):
        shifted = np.clip(rows + 96 * h.shift_days, 0, n_total - 1)
        load[:, j] = profiles.loads[h.profile][shifted] * h.load_scale * 250  # kW × 0.25 h → Wh
        pv[:, j] = profiles.pv[rows] * h.member.pv_wp / 4  # kW/kWp × Wp / 1000 × 250
    capacity = np.array([h.member.battery_wh for h in homes], np.float64)
    step = np.array([h.member.inverter_w / 4 for h in homes])
    limit = np.array([h.member.sell_cap_wh() for h in homes], np.float64)
    soc = capacity / 2
    out = {k: np.zeros((ticks, len(homes))) for k in ("charge", "discharge", "curtailed", "import_wh", "export_wh")}
    for t in range(ticks):
        net = pv[t] - load[t]
        charge = np.minimum(np.minimum(np.maximum(net, 0), step), (capacity - soc) / ETA)
        discharge = np.minimum(np.minimum(np.maximum(-net, 0), step), soc * ETA)
        soc = soc + charge * ETA - discharge / ETA
        export = np.maximum(net, 0) - charge
        out["curtailed"][t] = np.maximum(export - limit, 0)
        out["export_wh"][t] = export - out["curtailed"][t]
        out["import_wh"][t] = np.maximum(-net, 0) - discharge
        out["charge"][t], out["discharge"][t] = charge, discharge
    whole = {k: np.rint(v).astype(np.int64) for k, v in out.items()}
    return Metered(np.rint(load).astype(np.int64), np.rint(pv).astype(np.int64), **whole)
