"""``nattery simulate`` and the service loop under it: options, errors, signals, summaries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from pymodbus.client import AsyncModbusTcpClient

from device.cli import main
from device.modbus.mapmodel import RegisterMap
from device.simulator import Simulator
from device.simulator.service import parse_listen, serve
from tests.conftest import free_port, wait_for_port


def test_listen_urls() -> None:
    assert parse_listen("tcp://127.0.0.1:5020").port == 5020
    for bad in ("udp://127.0.0.1:1", "tcp://127.0.0.1", "127.0.0.1:5020", "tcp://:5020", "tcp://h:x"):
        with pytest.raises(ValueError, match="expected tcp://HOST:PORT"):
            parse_listen(bad)


async def test_serve_runs_until_stopped_then_closes(deye: RegisterMap) -> None:
    sim = Simulator(deye, baudrate=115200)
    stop = asyncio.Event()
    port = free_port()
    task = asyncio.create_task(serve(sim, listen=f"tcp://127.0.0.1:{port}", summary_s=0.1, stop=stop))
    await asyncio.to_thread(wait_for_port, port, 5)
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    assert not (await client.read_holding_registers(184, count=1)).isError()
    client.close()
    stop.set()
    await asyncio.wait_for(task, 5)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert sim.stats.transactions >= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "tcp://127.0.0.1:1", "--fault", "bogus"], "unknown kind 'bogus'"),
        (["--listen", "localhost:1"], "expected tcp://HOST:PORT"),
        ([], "give --listen tcp://HOST:PORT or --serial PATH"),
        (["--map", "nope", "--listen", "tcp://127.0.0.1:1"], "unknown inverter map 'nope'"),
        (["--listen", "tcp://127.0.0.1:1", "--speed", "0"], "speed: got 0.0"),
        (["--listen", "tcp://127.0.0.1:1", "--soc", "120"], "initial_soc_pct"),
    ],
)
def test_bad_options_exit_with_a_one_line_reason(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["simulate", *args])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_help_names_every_option() -> None:
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0
    for option in ("--map", "--listen", "--framer", "--serial", "--baud", "--speed", "--fault",
                   "--processing-ms", "--gap-ms", "--violation-reply", "--soc", "--profile", "--summary-s"):
        assert option in result.output


async def test_the_command_serves_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from device.cli import main; main()",
        "simulate", "--listen", f"tcp://127.0.0.1:{port}", "--baud", "115200", "--summary-s", "0.2",
        stderr=subprocess.PIPE, env={**os.environ, "NATTERY_LOG_FORMAT": "json"},
    )
    try:
        await asyncio.to_thread(wait_for_port, port, 20)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert await client.connect()
        assert not (await client.read_holding_registers(184, count=1)).isError()
        client.close()
        await asyncio.sleep(0.5)  # long enough for a summary line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    summaries = [line for line in lines if line["event"] == "simulator_summary"]
    stopped = next(line for line in lines if line["event"] == "simulator_stopped")
    assert summaries and stopped["transactions"] == 1 and stopped["violations"] == 0
