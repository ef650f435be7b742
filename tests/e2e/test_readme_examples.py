"""The shell examples of the README and the docs/ pages marked ``<!-- runnable … -->`` run as written against a started
appliance (``nattery run --simulate``). The test's appliance listens on free ports, so the
examples' ``localhost:8080`` and ``-p 1883`` are pointed at those; nothing else is changed (the
examples without either, the aggregator's commands, run while the appliance starts). A
``# {…}`` comment line after a command is the JSON the README promises it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import Broker
from tests.e2e.browser import nattery_simulate

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = re.compile(r"<!-- runnable[^>]*-->\n```sh\n(.*?)```", re.DOTALL)
PASSWORD = "sunny-battery-7"  # the one the API example uses, seeded as the homeowner's initial password


def runnable_examples() -> list[str]:
    return [example for doc in DOCUMENTS for example in RUNNABLE.findall(doc.read_text(encoding="utf-8"))]


def test_the_documents_mark_their_shell_examples_runnable() -> None:
    examples = runnable_examples()
    assert len(examples) >= 2
    assert any("mosquitto_sub" in e for e in examples) and any("/api/v1/login" in e for e in examples)


def needs_the_appliance(example: str) -> bool:
    return "localhost:8080" in example or "-p 1883" in example


def start(example: str, cwd: Path) -> subprocess.Popen[str]:
    """The example in bash, with the project's commands on PATH as an installed venv puts them."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.Popen(["bash", "-euo", "pipefail", "-c", example], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check(example: str, proc: subprocess.Popen[str]) -> None:
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"{example}\n→ exit {proc.returncode}: {stderr[-2000:]}"
    promised = [json.loads(line[2:]) for line in example.splitlines() if line.startswith("# {")]
    if promised:
        assert json.loads(stdout.strip().splitlines()[-1]) == promised[-1], stdout
    if "balance schedule" in example:  # the group's position: 96 quarter-hours (no schedules yet: substitutes)
        assert stdout.splitlines()[-97] == ("start,schedule_kwh,flex_up_kwh,flex_down_kwh,members,substitutes,"
                                            "members_with_flex"), stdout
        assert stdout.splitlines()[-96].startswith("2026-06-18T00:00:00+02:00,0,0,0,1,1,0"), stdout
    if "mosquitto_sub" in example:
        assert len(stdout.splitlines()) >= 5 and "nattery/nattery-dev/" in stdout


def test_the_documented_examples_run_as_written(tmp_path: Path, mosquitto: Broker) -> None:
    examples = runnable_examples()
    # those that need no appliance (the aggregator's commands) run while it starts
    alone = [(example, start(example, tmp_path)) for example in examples if not needs_the_appliance(example)]
    try:
        with nattery_simulate(tmp_path, mosquitto.port, env={"NATTERY_DEVICE_ID": "nattery-dev"},
                              homeowner_password=PASSWORD) as url:
            host = url.removeprefix("http://")
            for example in filter(needs_the_appliance, examples):
                check(example, start(example.replace("localhost:8080", host)
                                     .replace("-p 1883", f"-p {mosquitto.port}"), tmp_path))
        for example, proc in alone:
            check(example, proc)
    finally:
        for _, proc in alone:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
