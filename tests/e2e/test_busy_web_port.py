"""A web port held by another program: `nattery run` says so in one line, naming the port and the
setting to change, and exits 1 (no traceback)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def test_a_busy_web_port_is_one_line_naming_the_port_and_the_setting(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))  # the page listens on every address (web.host 0.0.0.0)
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", "from device.cli import main; main()", "run", "--simulate",
             "--port", str(port), "--data-dir", str(tmp_path / "data")],
            env={**os.environ, "NATTERY_MQTT_PORT": "0", "NATTERY_LOG_FORMAT": "json"},
            capture_output=True, text=True, timeout=180, check=False,
        )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    plain = [line for line in done.stderr.splitlines() if not _is_json(line)]
    assert plain == [(
        f"Error: web.port: port {port} on 0.0.0.0 is in use by another program; stop it or choose another "
        "port (nattery run --port N, or web.port / NATTERY_WEB_PORT; 0 picks a free one)"
    )]


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
