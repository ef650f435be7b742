"""The community benchmark's last line: one JSON object with every rule's figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cloud_sync.community.rules import RULES


def test_last_line_has_every_rules_figures() -> None:
    out = subprocess.run([sys.executable, "-m", "tools.bench.community", "--members", "60", "--ticks", "4"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert result["members"] == 60 and result["ticks"] == 4
    assert set(result["rules"]) == set(RULES)
    for figures in result["rules"].values():
        assert figures["trades"] > 0
        assert figures["conservation_error_wh"] == 0
        assert figures["replay_identical"] is True
        assert 0 < figures["tick_ms_p50"] <= figures["tick_ms_p99"]


def test_in_the_database_the_stored_trades_are_those_matched_in_memory(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tools.bench.community", "--members", "60", "--ticks", "3",
                          "--db", str(tmp_path / "bench.db")], capture_output=True, text=True, check=True).stdout
    for figures in json.loads(out.splitlines()[-1])["rules"].values():
        assert figures["db_trades_identical"] is True
        assert figures["db_conservation_error_wh"] == 0
        assert 0 < figures["db_tick_ms_p50"] <= figures["db_tick_ms_p99"]
