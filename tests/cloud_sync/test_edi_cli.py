"""``nattery-cloud edi``: the registry and a file run through the gateway from the command line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from cloud_sync.cli import main
from tests.cloud_sync.edi_files import DEVICE_PARTY, GRID, MELO, day_file


def test_register_and_receive_a_file_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "cloud.db")
    runner = CliRunner()

    def edi(*args: str) -> str:
        result = runner.invoke(main, ["--log-level", "warning", "edi", *args, "--db", db])
        assert result.exit_code == 0, result.output
        return result.output

    file = tmp_path / "day.edi"
    file.write_text(day_file(date(2026, 6, 15)))
    unknown = json.loads(edi("receive", str(file), "--device", "dev1"))
    assert unknown["accepted"] is False and {e["code"] for e in unknown["errors"]} == {"Z10", "Z17", "Z18"}
    assert edi("partner", DEVICE_PARTY.id, "--qualifier", "293") == f"partner {DEVICE_PARTY.id} (293) registered\n"
    edi("partner", GRID.id, "--qualifier", "332", "--name", "grid operator")
    edi("location", MELO, "--malo", "51238696781", "--device", "dev1")
    file.write_text(day_file(date(2026, 6, 15), 8))
    answer = json.loads(edi("receive", str(file), "--device", "dev1"))
    assert answer["accepted"] is True and "+7'" in answer["contrl"]
    wrong = runner.invoke(main, ["--log-level", "warning", "edi", "location", MELO, "--malo", "51238696782", "--db", db])
    assert wrong.exit_code != 0 and "the check digit (11th) is 2, it should be 1" in wrong.output
