"""Process composition: what ``nattery bridge``, ``nattery app`` and ``nattery run`` start.

Each service runs until ``stop`` is set (SIGTERM/SIGINT), then shuts down in the order that keeps
the home safe: the inverter back to self-consumption first, then buffered readings to disk, then
the ``offline`` status, then the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from device.app import run_app
from device.bridge import Bridge
from device.config import Config
from device.modbus.client import client_factory
from device.modbus.inverter import Inverter, Limits
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import load_map
from device.modbus.worker import ModbusWorker
from device.mqtt import embedded_broker
from device.ports import free_port
from device.store import AsyncStore, Retention

log = structlog.get_logger(__name__)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM (Balena stopping the container) or SIGINT (Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def line_protocol(cfg: Config, regmap: RegisterMap) -> RegisterMap:
    """The map with the installer's unit id, baud rate and parity applied."""
    changes: dict[str, Any] = {}
    if cfg.inverter.unit_id is not None:
        changes["unit_id"] = cfg.inverter.unit_id
    if cfg.inverter.baudrate is not None:
        changes["baudrate"] = cfg.inverter.baudrate
    if cfg.inverter.parity is not None:
        changes["parity"] = cfg.inverter.parity
    if not changes:
        return regmap
    return dataclasses.replace(regmap, protocol=dataclasses.replace(regmap.protocol, **changes))


async def run_until(stop: asyncio.Event, main: Awaitable[None], on_stop: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` until ``stop`` is set or it fails; then ``on_stop`` while ``main`` still runs.

    ``on_stop`` (the safe shutdown: inverter to self-consumption, readings to disk) runs after a
    crash of ``main`` too; the crash is raised after it, not swallowed."""
    task = asyncio.ensure_future(main)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        await on_stop()
        if task.done():
            task.result()
    finally:
        stopper.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_bridge(cfg: Config, stop: asyncio.Event) -> None:
    """The ``bridge`` service: the serial line, telemetry, commands and the watchdog."""
    regmap = line_protocol(cfg, load_map(cfg.inverter.map))
    worker = ModbusWorker(
        client_factory(cfg.inverter.port, regmap.protocol),
        regmap.protocol,
        port=cfg.inverter.port,
        timeout_s=cfg.inverter.timeout_s,
        retries=cfg.inverter.retries,
    )
    async with AsyncStore(cfg.db_path, Retention.from_settings(cfg.store)) as store, worker:
        inverter = Inverter(regmap, worker, Limits.from_settings(cfg.inverter))
        bridge = Bridge(cfg, inverter, store, worker_stats=worker.stats)
        log.info("bridge starting", map=regmap.family, port=cfg.inverter.port, device=cfg.device.id)
        await run_until(stop, bridge.run(), bridge.shutdown)
    log.info("bridge stopped")


@contextlib.asynccontextmanager
async def local_broker(cfg: Config) -> AsyncIterator[Config]:
    """The configured broker, or an embedded one when ``mqtt.host`` is empty."""
    if cfg.mqtt.host:
        yield cfg
        return
    async with embedded_broker(cfg.mqtt.port) as port:
        yield cfg.replace(mqtt={"host": "127.0.0.1", "port": port})


async def run_simulated(cfg: Config, stop: asyncio.Event, *, speed: float = 1.0) -> None:
    """``nattery run --simulate``: broker, simulator, bridge and app in one process."""
    from device.simulator import PhysicsSettings, Simulator

    regmap = load_map(cfg.inverter.map)
    sim = Simulator(
        regmap,
        physics=PhysicsSettings(
            latitude=cfg.device.latitude, longitude=cfg.device.longitude, timezone=cfg.device.timezone
        ),
        speed=speed,
    )
    sim_port = free_port()
    await sim.serve_tcp("127.0.0.1", sim_port, "rtu")
    log.info("simulated inverter listening", map=regmap.family, port=f"rtu+tcp://127.0.0.1:{sim_port}")
    try:
        async with local_broker(cfg) as cfg:
            cfg = cfg.replace(inverter={"port": f"rtu+tcp://127.0.0.1:{sim_port}"})
            log.info(
                "watch it live",
                mqtt=f"mosquitto_sub -h {cfg.mqtt.host} -p {cfg.mqtt.port} -v -t '{cfg.mqtt.prefix}/#'",
            )
            # The bridge starts first so the app finds the database created and telemetry flowing.
            async with asyncio.TaskGroup() as group:
                group.create_task(run_bridge(cfg, stop), name="bridge")
                group.create_task(run_app(cfg, stop), name="app")
    finally:
        await sim.close()


def local_config(cfg: Config, data_dir: Path | None) -> Config:
    """Local runs keep their data in ``./data`` unless told otherwise (there is no /data volume),
    and replay the shipped price sample when no ENTSO-E token is configured."""
    cfg = cfg.replace(device={"data_dir": str(data_dir or Path("data").resolve())})
    if cfg.prices.source == "entsoe" and not cfg.prices.entsoe_token:
        log.info("no ENTSO-E token: replaying the shipped day-ahead price sample")
        cfg = cfg.replace(prices={"source": "csv"})
    return cfg
