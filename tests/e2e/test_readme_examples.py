"""The shell examples of the README and the docs/ pages marked ``<!-- runnable … -->`` run as written against a started
appliance (``nattery run --simulate``). The test's appliance listens on free ports, so the
examples' ``localhost:8080`` and ``-p 1883`` are pointed at those; nothing else is changed. A
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


def test_the_documented_examples_run_as_written(tmp_path: Path, mosquitto: Broker) -> None:
    with nattery_simulate(tmp_path, mosquitto.port, env={"NATTERY_DEVICE_ID": "nattery-dev"},
                          homeowner_password=PASSWORD) as url:
        host = url.removeprefix("http://")
        # the project's commands as an installed venv puts them on PATH
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        for example in runnable_examples():
            script = example.replace("localhost:8080", host).replace("-p 1883", f"-p {mosquitto.port}")
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, f"{example}\n→ exit {done.returncode}: {done.stderr[-2000:]}"
            promised = [json.loads(line[2:]) for line in example.splitlines() if line.startswith("# {")]
            if promised:
                assert json.loads(done.stdout.strip().splitlines()[-1]) == promised[-1], done.stdout
            if "balance schedule" in example:  # the group's position: 96 quarter-hours (no schedules yet: substitutes)
                assert done.stdout.splitlines()[-97] == ("start,schedule_kwh,flex_up_kwh,flex_down_kwh,members,substitutes,"
                                                        "members_with_flex"), done.stdout
                assert done.stdout.splitlines()[-96].startswith("2026-06-18T00:00:00+02:00,0,0,0,1,1,0"), done.stdout
            if "mosquitto_sub" in example:
                assert len(done.stdout.splitlines()) >= 5 and "nattery/nattery-dev/" in done.stdout
