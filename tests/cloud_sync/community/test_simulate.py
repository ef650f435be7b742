"""Simulation runs on the shared data set's real household and PV profiles."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cloud_sync.cli import main
from cloud_sync.community import export
from cloud_sync.community.model import RULE_NAMES, CommunityError
from cloud_sync.community.simulate import Settings, simulate, summary

ROOT = Path(__file__).resolve().parents[3]
HOUSEHOLDS = Path(os.environ.get("NATTERY_HOUSEHOLDS", "")) if "NATTERY_HOUSEHOLDS" in os.environ else next(
    (p / "shared/data/household" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared/data/household").is_dir()),
    ROOT.parent / "shared/data/household",
)


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_the_same_seed_gives_byte_identical_files(rule: str, tmp_path: Path) -> None:
    settings = Settings(members=12, days=2, seed=7, rule=rule, start=date(2024, 7, 1))
    first = export.write(simulate(settings, HOUSEHOLDS), tmp_path / "a")
    second = export.write(simulate(settings, HOUSEHOLDS), tmp_path / "b")
    assert first.name == second.name == settings.run_id
    for name in export.TABLES:
        for suffix in (".csv", ".parquet"):
            assert (first / f"{name}{suffix}").read_bytes() == (second / f"{name}{suffix}").read_bytes(), name
    other = simulate(Settings(members=12, days=2, seed=8, rule=rule, start=date(2024, 7, 1)), HOUSEHOLDS)
    assert other.digest != summary(simulate(settings, HOUSEHOLDS))["trades_sha256"]


def test_a_run_conserves_energy_across_its_tables_and_tags_every_row(tmp_path: Path) -> None:
    run = simulate(Settings(members=30, days=3, seed=3, rule="proportional", start=date(2024, 5, 10)), HOUSEHOLDS)
    folder = export.write(run, tmp_path)
    tables = {name: pq.read_table(folder / f"{name}.parquet").to_pydict() for name in export.TABLES}
    for name, table in tables.items():
        assert set(table["run_id"]) == {run.run_id}, name
    energy, trades, balances = tables["energy"], tables["trades"], tables["balances"]
    assert len(energy["member"]) == 30 * 3 * 96
    shared = sum(trades["wh"])
    assert shared > 0
    assert sum(balances["sold_wh"]) == sum(balances["bought_wh"]) == shared
    # What the meters exported either went to a neighbour or to the grid; the same for imports.
    assert sum(energy["export_wh"]) == shared + sum(balances["grid_export_wh"])
    assert sum(energy["import_wh"]) == shared + sum(balances["grid_import_wh"])
    csv = pa_csv.read_csv(folder / "trades.csv").to_pydict()
    assert csv["wh"] == trades["wh"] and csv["seller"] == trades["seller"]
    s = tables["summary"]
    assert s["self_sufficiency"][0] > s["self_sufficiency_alone"][0]
    assert s["shared_kwh"][0] == round(shared / 1000, 1)
    assert s["saving_eur"][0] == round(sum(balances["saving_neur"]) / 1e9, 2) > 0
    assert 0 <= s["saving_gini"][0] < 1


def test_the_command_compares_the_rules_on_one_community(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--members", "10", "--days", "1", "--seed", "2", "--start",
                                       "2024-08-01", "--households", str(HOUSEHOLDS), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "self-sufficiency" not in line]
    assert [r.split("|")[1].strip() for r in rows] == list(RULE_NAMES)
    assert len({r.split("|")[2] for r in rows}) == 1  # one community: the same self-sufficiency alone
    assert len(list(tmp_path.iterdir())) == 4


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(CommunityError, match=r"members: 1 is not allowed \(2 to 100000\)"):
        Settings(members=1, days=1, seed=1, rule="greedy")
    with pytest.raises(CommunityError, match=r"rule: 'fair' is not allowed"):
        Settings(members=5, days=1, seed=1, rule="fair")
    with pytest.raises(CommunityError, match=r"end of the period: 2025-01-02 is not allowed \(the profiles cover the local year 2024\)"):
        simulate(Settings(members=5, days=2, seed=1, rule="greedy", start=date(2024, 12, 31)), HOUSEHOLDS)
    result = CliRunner().invoke(main, ["simulate", "--households", str(tmp_path), "--out", str(tmp_path)])
    assert result.exit_code == 1 and "de_household_15min_2024.csv does not exist" in result.output
