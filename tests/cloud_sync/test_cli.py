"""``nattery-cloud`` in-process (click's CliRunner) on a real SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cloud_sync.cli import main


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_device_registration_prints_the_credential_once_and_stores_a_hash(tmp_path: Path) -> None:
    db = str(tmp_path / "cloud.db")
    code, out, err = invoke("device", "add", "pi-42", "--db", db)
    assert code == 0
    credential = out.strip()
    assert credential.startswith("dev.pi-42.") and len(credential) > 40
    assert "cannot be shown again" in err
    assert credential.split(".")[-1].encode() not in (tmp_path / "cloud.db").read_bytes()
    code, _, err = invoke("device", "add", "pi-42", "--db", db)
    assert (code, "device 'pi-42' already exists" in err) == (1, True)
    assert invoke("device", "list", "--db", db)[1].startswith("pi-42\toffline\t")
    assert invoke("device", "revoke", "pi-42", "--db", db)[:2] == (0, "device pi-42 revoked\n")
    assert "pi-42\trevoked" in invoke("device", "list", "--db", db)[1]
    code, _, err = invoke("device", "revoke", "nobody", "--db", db)
    assert (code, err.strip()) == (1, "Error: device 'nobody' does not exist")


def test_operator_credentials_and_bad_names(tmp_path: Path) -> None:
    db = str(tmp_path / "cloud.db")
    code, out, _ = invoke("operator", "add", "fleet-ops", "--db", db)
    assert code == 0 and out.startswith("op.fleet-ops.")
    code, _, err = invoke("device", "add", "bad id!", "--db", db)
    assert (code, err.strip()) == (1, "Error: device 'bad id!': use 1-64 characters of A-Z a-z 0-9 _ -")


@pytest.mark.parametrize("command", [("device", "list"), ("community", "list"), ("balance", "group", "list")],
                         ids=" ".join)
def test_unreachable_postgresql_is_a_one_line_error(command: tuple[str, ...]) -> None:
    code, _, err = invoke(*command, "--db", "postgresql://nobody:secret@127.0.0.1:1/none")
    assert code == 1, err
    assert err.startswith("Error: PostgreSQL at postgresql://nobody:***@127.0.0.1:1/none: cannot connect")
    assert "secret" not in err


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    code, out, _ = invoke(*path, "--help")
    assert code == 0
    assert "Usage:" in out
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help


def test_serve_opens_a_database_at_head_without_alembic_numpy_or_pyarrow(tmp_path: Path) -> None:
    """What ``serve`` loads on its way to listening: Alembic only runs to migrate, NumPy comes
    with the first community call and pyarrow with an export (they cost start-up time and memory)."""
    db = str(tmp_path / "cloud.db")
    assert invoke("device", "add", "pi-1", "--db", db)[0] == 0  # creates and migrates the database
    script = ("import asyncio, sys\n"
              "import cloud_sync.__main__\n"  # everything nattery-cloud imports, serve's app included
              "from cloud_sync.db import connect\n"
              "async def opened() -> None:\n"
              "    await (await connect(sys.argv[1])).close()\n"
              "asyncio.run(opened())\n"
              "print(sorted({'alembic', 'numpy', 'pyarrow'} & sys.modules.keys()))\n")
    out = subprocess.run([sys.executable, "-c", script, db], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"
