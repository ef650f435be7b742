"""The device log is JSON lines only: `nattery run --simulate` (broker, bridge, app, solver,
forecast) writes nothing else on stdout or stderr — no library banner, no plain-text line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

#: Events that show the parts with native banners ran: HiGHS (plans) and LiteRT (price forecast).
WANTED = {"replanned", "price_forecast"}


async def test_every_line_a_service_writes_is_json(tmp_path: Path) -> None:
    env = {**os.environ, "NATTERY_LOG_LEVEL": "info", "NATTERY_MQTT_PORT": "0"}
    env.pop("NATTERY_LOG_FORMAT", None)  # auto: JSON, as under Balena (no TTY)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from device.cli import main; main()", "run", "--simulate", "--port", "0",
        "--data-dir", str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[bytes] = []
    seen: set[str] = set()
    try:
        async with asyncio.timeout(180):
            while not seen >= WANTED:
                line = await process.stderr.readline()
                assert line, f"the process ended early: {b''.join(lines[-20:]).decode()}"
                lines.append(line)
                with contextlib.suppress(ValueError):
                    seen.add(json.loads(line).get("event"))  # reported below with every other line
    finally:
        process.send_signal(signal.SIGTERM)
        rest, out = await asyncio.wait_for(asyncio.gather(process.stderr.read(), process.stdout.read()), 60)
        await process.wait()
    lines += rest.splitlines(keepends=True)
    not_json = [line for line in lines + out.splitlines(keepends=True) if not _is_json_object(line)]
    assert not_json == []
    assert process.returncode == 0


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
