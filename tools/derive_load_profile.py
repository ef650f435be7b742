"""Derive the cold-start load profile shipped in ``device/forecast/data/standard_load_profile.csv``.

Input: the BDEW H25 household year in ``../shared/data/household/de_household_15min_2023.csv``
(dynamised standard load profile, 3,500 kWh/yr). Output: mean kW per (local month, day type,
local quarter-hour of the day), scaled to 1,000 kWh/yr — 12 × 3 × 96 values, 60 kB of text.
Day types: 0 = Monday–Friday, 1 = Saturday, 2 = Sunday (public holidays are not separated).

    python -m tools.derive_load_profile ../shared/data/household/de_household_15min_2023.csv
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from common.utc import parse_utc

OUT = Path(__file__).resolve().parents[1] / "device" / "forecast" / "data" / "standard_load_profile.csv"


def derive(source: Path, out: Path = OUT) -> None:
    zone = ZoneInfo("Europe/Berlin")
    sums: dict[tuple[int, int, int], list[float]] = defaultdict(list)
    total_kwh = 0.0
    with source.open() as f:
        for row in csv.DictReader(f):
            local = datetime.fromtimestamp(parse_utc(row["timestamp_utc"]), zone)
            kw = float(row["load_kw"])
            total_kwh += kw * 0.25
            daytype = min(local.weekday() - 4, 2) if local.weekday() >= 5 else 0
            sums[(local.month, daytype, local.hour * 4 + local.minute // 15)].append(kw)
    scale = 1000.0 / total_kwh
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["month", "daytype", "slot", "kw_per_mwh_year"])
        for key in sorted(sums):
            values = sums[key]
            writer.writerow([*key, f"{sum(values) / len(values) * scale:.5f}"])


if __name__ == "__main__":
    derive(Path(sys.argv[1]))
