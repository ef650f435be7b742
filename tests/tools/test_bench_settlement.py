"""The settlement benchmark's last line: a run loaded in bulk, settled and checked against its reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_a_small_group_settles_exactly_as_the_reference_says(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tools.bench.settlement", "--members", "120", "--days", "1",
                          "--db", str(tmp_path / "bench.db")], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert (result["members"], result["slots"], result["rows"], result["database"]) == (120, 96, 120 * 96, "sqlite")
    assert result["max_abs_error_kwh"] == 0 and result["max_abs_error_eur"] == 0 and result["missing_rows"] == 0
    assert result["substitutes"] >= 1  # one member in a hundred sent no schedule: its history was loaded
    assert result["rerun_unchanged"] is True
