"""The EDI benchmark: a household's days (a small file written here, through the spring clock
change) through the real export and a real aggregator, every file accepted and every quarter-hour
back as exported; --out keeps the files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path


def household(path: Path) -> Path:
    start = datetime(2024, 3, 29, 23, 0, tzinfo=UTC)  # local midnight of 2024-03-30
    rows = ["timestamp_utc,load_kw,pv_kw_per_kwp"]
    for n in range(3 * 96):
        ts = start + timedelta(minutes=15 * n)
        pv = max(0.0, math.sin(math.pi * ((ts.hour + ts.minute / 60) - 5) / 14)) * 0.7
        rows.append(f"{ts:%Y-%m-%dT%H:%M:%SZ},{0.3 + 0.2 * (n % 7) / 7:.6f},{pv:.6f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_days_round_trip_through_the_clock_change(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tools.bench.edi", "--household", str(household(tmp_path / "h.csv")),
                          "--days", "2", "--out", str(tmp_path / "files")], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    # 2024-03-30 has 96 quarter-hours, 2024-03-31 (clocks forward) 92; two series each.
    assert (result["files"], result["slots"], result["accepted"], result["rejected"]) == (2, 2 * (96 + 92), 2, 0)
    assert result["roundtrip_mismatches"] == 0 and result["days"] == "2024-03-30..2024-03-31"
    assert result["export_ms_p50"] > 0 and 0 < result["gateway_ms_p50"] <= result["gateway_ms_p99"]
    assert sorted(p.name[-23:] for p in (tmp_path / "files").iterdir()) == [
        "2024-03-30_00000001.edi", "2024-03-31_00000002.edi"]
