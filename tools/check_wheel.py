"""Check that the package installs from a wheel and runs outside the checkout (a CI step).

    python -m tools.check_wheel

Builds a wheel from a copy of the checkout's sources, installs it with the ``local`` and ``cloud``
extras into a fresh virtualenv (``python -m venv``; packages from the configured index), and starts
``nattery run --simulate`` from that venv in an empty working directory, without the checkout
on the import path, until the web page answers; then stops it with SIGTERM and expects exit 0.
Then ``nattery-cloud device add`` from the venv creates an aggregator database, which needs the
Alembic migrations shipped in the wheel.
Exits non-zero, with the failing step's output, otherwise. ``.ci/run`` runs it beside the tests
(it waits mostly on pip and on start-up, so it costs the suite little time).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import closing
from pathlib import Path

from device.ports import free_port

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "common", "device", "cloud_sync", "fleet")


class CheckFailed(Exception):
    """A step failed; the message says which and shows its output."""


def outside_env() -> dict[str, str]:
    """The environment without the checkout on the import path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run(*args: str | Path, cwd: Path) -> str:
    out = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900,
                         env=outside_env())
    if out.returncode != 0:
        raise CheckFailed(f"{' '.join(map(str, args[:4]))} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return out.stdout


def build_wheel(work: Path) -> Path:
    """The wheel, built from a copy of the sources so the checkout gets no build/ or egg-info."""
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", work / "dist", source, cwd=work)
    (wheel,) = (work / "dist").glob("nattery-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> None:
    run(sys.executable, "-m", "venv", venv, cwd=venv.parent)
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[local,cloud]", cwd=venv.parent)


def wait_for_page(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status: int = response.status
                return status
        except (urllib.error.URLError, ConnectionError) as exc:
            if proc.poll() is not None:
                raise CheckFailed(f"nattery exited with {proc.returncode}:\n{log.read_text()[-3000:]}") from exc
            if time.monotonic() > deadline:
                raise CheckFailed(f"no page after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}") from exc
            time.sleep(0.25)


def run_simulated(venv: Path, site: Path) -> int:
    """``nattery run --simulate`` from the venv in ``site`` until the page answers; its status."""
    installed = run(venv / "bin" / "python", "-c", "import device; print(device.__file__)", cwd=site).strip()
    if not installed.startswith(str(venv)):
        raise CheckFailed(f"device is imported from {installed}, not from the installed wheel")
    port = free_port()
    log = site.parent / "nattery.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(venv / "bin" / "nattery"), "run", "--simulate", "--port", str(port)],
            cwd=site, stdout=out, stderr=subprocess.STDOUT,
            env={**outside_env(), "NATTERY_WEB_HOST": "127.0.0.1", "NATTERY_MQTT_PORT": "0"},
        )
        try:
            status = wait_for_page(f"http://127.0.0.1:{port}/login", proc, log)
            proc.send_signal(signal.SIGTERM)
            if (code := proc.wait(60)) != 0:
                raise CheckFailed(f"nattery exited with {code} after SIGTERM:\n{log.read_text()[-3000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    if not (site / "data" / "nattery.db").exists():
        raise CheckFailed(f"no database in {site / 'data'}")
    return status


def run_cloud(venv: Path, site: Path) -> str:
    """``nattery-cloud device add`` from the venv on a new SQLite file: the packaged migrations
    create the schema. The database's revision."""
    target = site / "cloud.db"
    credential = run(venv / "bin" / "nattery-cloud", "device", "add", "wheel-check", "--db", target, cwd=site)
    if not credential.startswith("dev.wheel-check."):
        raise CheckFailed(f"nattery-cloud device add printed {credential!r}, not a credential")
    with closing(sqlite3.connect(target)) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


def main() -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nattery-wheel-") as tmp:
        work = Path(tmp)
        site = work / "site"
        site.mkdir()
        try:
            wheel = build_wheel(work)
            install(wheel, work / "venv")
            status = run_simulated(work / "venv", site)
            revision = run_cloud(work / "venv", site)
        except CheckFailed as exc:
            sys.exit(f"wheel check failed: {exc}")
    print(f"wheel check: {wheel.name} installed into a fresh venv; `nattery run --simulate` served the "
          f"page ({status}) and stopped on SIGTERM; `nattery-cloud` migrated a new database to {revision} "
          f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
