"""Every shell example in the README and the ``docs/`` pages names commands and options that exist.

The examples marked ``<!-- runnable -->`` are run against a started appliance
(``tests/e2e/test_readme_examples.py``); the others start servers, run benchmarks for minutes or
talk to Balena Cloud. Those are run here by bash exactly as written (variables, loops,
``$(…)``), with ``nattery``, ``nattery-cloud``, ``nattery-fleet``, ``python`` and the other
programs replaced by shell functions that only record their arguments. Each recorded command is
then parsed by its real command-line parser, without running it: a renamed option, a sub-command
that went away or a value of the wrong type in the documentation fails here. Paths into the
shared data (``../shared/data/…``) must exist.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click
import pytest

from tests.test_commands import ROOTS

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"(<!-- runnable[^>]*-->\n)?```(?:sh|bash|shell)\n(.*?)```", re.DOTALL)
#: Programs whose arguments are checked; every other program an example calls is a no-op here.
CHECKED = ("nattery", "nattery-cloud", "nattery-fleet", "python", "python3", "alembic")
NO_OPS = ("curl", "pip", "promtool", "mosquitto_sub", "mosquitto_pub", "socat", "balena", "sleep", "kill", "wait")
#: A file the reader brings, named by a relative path (``rebap-2026-06.csv``, ``tariff.yaml``).
USER_FILE = re.compile(r"[\w./-]+\.(csv|yaml|yml|json|edi|txt|xml)")
#: The quick start's two commands: CI runs the second, the browser tests what the first starts.
QUICK_START = ("python3 -m venv .venv && .venv/bin/pip install -q -e '.[local]' && .venv/bin/nattery run --simulate",
               "bash .ci/run")


def shell_examples() -> Iterator[tuple[str, int, str]]:
    """(document, example number, script) for every shell block not marked runnable."""
    for doc in DOCUMENTS:
        for number, match in enumerate(SHELL_BLOCK.finditer(doc.read_text(encoding="utf-8")), 1):
            runnable, script = match.groups()
            if not runnable and tuple(script.strip().splitlines()) != QUICK_START:
                yield doc.relative_to(ROOT).as_posix(), number, script


def scratch_checkout(tmp: Path) -> Path:
    """A directory laid out like the checkout (its entries linked) with ``../shared`` beside it,
    where an example may write its own files (``cat > tariff.yaml``) without touching the checkout."""
    work = tmp / "checkout"
    work.mkdir()
    for entry in ROOT.iterdir():
        if not entry.name.startswith("."):
            (work / entry.name).symlink_to(entry)
    (tmp / "shared").symlink_to((ROOT / ".." / "shared").resolve())
    return work


def recorded_commands(script: str, workdir: Path) -> list[list[str]]:
    """The commands ``script`` would run in ``workdir``, each as its argument list, in order."""
    log = workdir.parent / "commands"
    log.write_bytes(b"")
    stubs = "\n".join(
        # One record per call under a lock: a backgrounded example (`serve … &`) records while
        # the next command does, and two unlocked writes each could interleave.
        [f'{name}() {{ {{ flock 9; printf "%s\\0" {name} "$@" >&9; printf "\\n" >&9; }} 9>>"$LOG"; echo placeholder; }}'
         for name in CHECKED]
        + [f"{name}() {{ :; }}" for name in NO_OPS]
    )
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{stubs}\n{script}"], cwd=workdir,
                          env={"LOG": str(log), "PATH": "/usr/bin:/bin", "HOME": str(workdir)},
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"the example does not run as a shell script: {done.stderr}"
    return [line.rstrip("\0").split("\0") for line in log.read_text().splitlines() if line]


class _Parsed(Exception):
    """Raised instead of running a tool once its arguments are parsed."""


def _stop_after_parsing(parse: Any) -> Any:
    def parse_args(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        parse(self, *args, **kwargs)
        raise _Parsed

    return parse_args


def check_python_module(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if argv[:1] == ["-c"]:  # a one-line introspection inside $(…): nothing to parse
        return
    assert argv[:1] == ["-m"], f"python is run as `python -m <module>` or `-c` in the docs, not {argv}"
    module = importlib.import_module(argv[1])
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", _stop_after_parsing(argparse.ArgumentParser.parse_args))
    monkeypatch.setattr("sys.argv", [argv[1], *argv[2:]])
    try:
        module.main()
    except _Parsed:
        return
    except SystemExit as exc:
        pytest.fail(f"python {' '.join(argv)}: its parser refused the arguments (exit {exc.code})")
    pytest.fail(f"python -m {argv[1]} ran without parsing arguments")


def check_alembic(args: list[str]) -> None:
    """Alembic's own parser: the sub-command and its options exist (the database is not touched)."""
    from alembic.config import CommandLine

    try:
        CommandLine(prog="alembic").parser.parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"alembic {' '.join(args)}: its parser refused the arguments (exit {exc.code})")


def check_click_command(program: str, args: list[str]) -> None:
    """Resolve sub-commands and parse options as click would, stopping before the callback."""
    command: click.Command = ROOTS[program]
    ctx = command.make_context(program, list(args))
    while isinstance(command, click.Group):
        with warnings.catch_warnings():  # Click 9 keeps the sub-command in ctx.args; 8.2 warns
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*ctx.protected_args, *ctx.args]
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None, f"{program}: no such command {rest}"
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)


EXAMPLES = list(shell_examples())


@pytest.mark.parametrize(("doc", "number", "script"), EXAMPLES, ids=[f"{d}#{n}" for d, n, _ in EXAMPLES])
def test_documented_commands_parse(doc: str, number: int, script: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    workdir = scratch_checkout(tmp_path)
    commands = recorded_commands(script, workdir)
    monkeypatch.chdir(workdir)
    for program, *args in commands:
        for arg in args:
            if "shared/data" in arg:
                assert (workdir / arg).exists(), f"{doc} example {number} names a file that is not there: {arg}"
            elif USER_FILE.fullmatch(arg) and not (workdir / arg).exists():
                assert (workdir / arg).parent == workdir, f"{doc} example {number}: no such file in the checkout: {arg}"
                (workdir / arg).touch()  # the reader's own file (a price series, a tariff): it exists
        try:
            if program.startswith("python"):
                check_python_module(args, monkeypatch)
            elif program == "alembic":
                check_alembic(args)
            else:
                check_click_command(program, args)
        except click.ClickException as exc:
            pytest.fail(f"{doc} example {number}: `{program} {' '.join(args)}`: {exc.format_message()}")


def test_the_documents_have_examples_to_check(tmp_path: Path) -> None:
    """The parser of the examples finds them (a changed fence would silently check nothing), and
    the README's quick start is the two commands the guide promises."""
    assert "```sh\n" + "\n".join(QUICK_START) + "\n```" in (ROOT / "README.md").read_text()
    workdir = scratch_checkout(tmp_path)
    programs = {cmd[0] for _, _, script in EXAMPLES for cmd in recorded_commands(script, workdir)}
    assert {"nattery", "nattery-cloud", "nattery-fleet", "python"} <= programs


def test_a_wrong_option_in_an_example_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(click.NoSuchOption):
        check_click_command("nattery", ["maps", "check", "--no-such-option"])
    (_python, *args), = recorded_commands("python -m tools.bench.modbus --cycles ten", scratch_checkout(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="refused"):
        check_python_module(args, monkeypatch)
