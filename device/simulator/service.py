"""Run a simulator as a service: serve, log a summary now and then, stop cleanly on a signal.

``nattery simulate`` is a thin layer over :func:`serve`; ``nattery run --simulate`` starts a
:class:`Simulator` in its own process with :meth:`Simulator.serve_tcp` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import structlog

from device.simulator.server import Simulator

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def parse_listen(url: str) -> Endpoint:
    """``tcp://HOST:PORT`` → endpoint; a clear error otherwise."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise ValueError(f"--listen: got {url!r}, expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:5020)")
    return Endpoint(parts.hostname, port)


async def serve(
    sim: Simulator,
    listen: str | None = None,
    framer: Literal["rtu", "socket"] = "socket",
    serial: str | None = None,
    summary_s: float = 30.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); log a summary every ``summary_s``."""
    if listen is None and serial is None:
        raise ValueError("give --listen tcp://HOST:PORT or --serial PATH (or both)")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if serial is not None:
            await sim.serve_serial(serial)
        if listen is not None:
            endpoint = parse_listen(listen)
            await sim.serve_tcp(endpoint.host, endpoint.port, framer)
        log.info("simulator_started", map=sim.regmap.family, baudrate=sim.baudrate,
                 speed=sim.speed, mode=sim.mode, soc_pct=round(sim.battery.soc_pct, 1))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), summary_s)
            if not stop.is_set():
                log.info("simulator_summary", **sim.summary())
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await sim.close()
