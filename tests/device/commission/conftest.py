"""The simulator as commissioning meets it: TCP (RTU frames) at a fast line speed and a fixed time.

115200 baud and a fixed simulated afternoon make scans take tenths of a second and the flows the
same on every run. CLI tests run the command in-process with click's CliRunner in a thread (the
command starts its own event loop while the simulator keeps serving on the test's).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from click.testing import CliRunner, Result

from device.cli import main
from device.commission import Report, commission_inverter
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import available_maps, load_map
from device.simulator import Simulator

NOON = 1_750_000_000.0  # 2025-06-15 ~15:06 UTC: sunny afternoon, battery charging from PV
MAPS = sorted(available_maps())
FAST = 115200
SILENT_S = 0.1  # scan timeout where nothing answers (see run_inverter)


@functools.cache
def shipped(family: str) -> RegisterMap:
    """A shipped map, parsed once per test process: parsing takes up to tenths of a second, and a
    map is immutable (scan, inverter and simulator derive their own with dataclasses.replace)."""
    return load_map(family)


async def simulator(family: str, unit_id: int | None = None) -> tuple[Simulator, str]:
    sim = Simulator(shipped(family), baudrate=FAST, unit_id=unit_id, start_time=NOON)
    port = await sim.serve_tcp("127.0.0.1", 0, "rtu")
    return sim, f"rtu+tcp://127.0.0.1:{port}"


@pytest.fixture
async def deye() -> AsyncIterator[tuple[Simulator, str]]:
    sim, port = await simulator("deye_hybrid_1p")
    yield sim, port
    await sim.close()


async def run_inverter(port: str, maps: Sequence[str] = MAPS, **kwargs: Any) -> Report:
    """Scan, check and write-test (default: every shipped map) at :data:`FAST`, no retries.

    The scan timeout stays the command's 0.5 s: a timeout that must not fire (something answers)
    needs room on a loaded machine, where replies were seen 150 ms late (4 test workers on 2
    cores). So tests expecting answers scan only unit ids that answer, and tests about silence
    (where a timeout always fires and costs just its length) pass ``scan_timeout_s=SILENT_S``.
    """
    kwargs.setdefault("bauds", [FAST])  # a silent unit costs a timeout plus a maximal late frame
    return await commission_inverter(port, [shipped(m) for m in maps], timeout_s=0.5, retries=0, **kwargs)


async def invoke(*args: str, input: str | None = None) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, ["commission", *args], input=input)


def problems(report: Report) -> str:
    return "\n".join(report.problems)
