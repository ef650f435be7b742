"""The real `nattery commission` process against a `nattery simulate` process on a socat pty pair,
as an installer runs it on site: scan every shipped map, check, rewrite a setting, write the
installer file; the bridge then starts from that file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from device import config as configuration
from tests.conftest import PtyPair


def nattery(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("nattery")), *args]


def wait_for_line(proc: subprocess.Popen[bytes], marker: bytes) -> None:
    """Read the process' log until ``marker`` (it serves from then on); fail if it exits first."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if marker in line:
            return
    raise AssertionError(f"simulator exited ({proc.wait()}) before logging {marker!r}")


def test_commission_process_finds_the_simulated_huawei_and_writes_the_installer_file(
        tmp_path: Path, pty_pair: PtyPair) -> None:
    sim = subprocess.Popen(nattery("simulate", "--map", "huawei_sun2000_luna2000", "--serial", pty_pair.b,
                                   "--baud", "115200"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_line(sim, b"simulator_started")
        env = {**os.environ, "NATTERY_INVERTER_PORT": f"serial://{pty_pair.a}"}
        done = subprocess.run(
            nattery("commission", "--scan-timeout", "0.2", "--write-config", "--json", "--data-dir", str(tmp_path)),
            env=env, capture_output=True, timeout=60)
    finally:
        sim.terminate()
        sim.wait(10)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["found"]["map"] == "huawei_sun2000_luna2000" and report["found"]["unit_id"] == 1
    assert {p["map"]: p["outcome"] for p in report["scan"]} == {
        "deye_hybrid_1p": "exception", "deye_hybrid_3p": "exception", "huawei_sun2000_luna2000": "fits",
        "sungrow_sh_hybrid": "exception", "fronius_gen24": "other_family", "kostal_plenticore": "no_reply",
        "sma_hybrid": "no_reply",
        "goodwe_et_hybrid": "no_reply"}  # GoodWe speaks at unit 247, the simulated Huawei at 1
    assert report["write"]["ok"] is True
    cfg = configuration.load([configuration.DEFAULT_FILE, tmp_path / "nattery.yaml"], environ={})
    assert (cfg.inverter.map, cfg.inverter.port, cfg.inverter.unit_id) == (
        "huawei_sun2000_luna2000", f"serial://{pty_pair.a}", 1)
