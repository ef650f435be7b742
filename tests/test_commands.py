"""Every ``nattery``, ``nattery-cloud`` and ``nattery-fleet`` command and sub-command has ``--help`` text and a row in
the README's command table (the table is where users look first)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cloud_sync.cli import main as cloud_main
from device.cli import main as device_main
from fleet.cli import main as fleet_main

README = Path(__file__).resolve().parents[1] / "README.md"


def commands(group: click.Group, path: str) -> Iterator[tuple[str, click.Command]]:
    """(``"nattery plan"``, command) for the group and every command below it."""
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


ROOTS = {"nattery": device_main, "nattery-cloud": cloud_main, "nattery-fleet": fleet_main}
COMMANDS = [item for name, root in ROOTS.items() for item in commands(root, name)]


def readme_table_rows() -> list[str]:
    """The first cell of every row of the README's ``## Commands`` table."""
    section = README.read_text().split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1).replace("\\|", "|") for m in re.finditer(r"^\| `([^`]+)` \|", section, re.M)]


def listed(path: str, rows: list[str]) -> bool:
    """A row names the command: ``nattery plan [--soc PCT]`` lists ``nattery plan``, and
    ``nattery-cloud device add|revoke|list`` lists each of the three."""
    *parent, name = path.split()
    for row in rows:
        words = row.split()
        if words[: len(parent)] == parent and len(words) > len(parent) and name in words[len(parent)].split("|"):
            return True
    return False


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help_text(path: str, command: click.Command) -> None:
    root = ROOTS[path.split()[0]]
    result = CliRunner().invoke(root, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert command.help, f"{path} has no help text"
    first_paragraph = " ".join(command.help.split("\n\n")[0].split())
    assert first_paragraph in " ".join(result.output.split())


def test_every_command_has_a_row_in_the_readme() -> None:
    rows = readme_table_rows()
    leaves = [path for path, command in COMMANDS if not isinstance(command, click.Group)]
    assert [path for path in leaves if not listed(path, rows)] == []
    assert not listed("nattery no-such-command", rows)
