"""``nattery run --simulate``: broker, simulated inverter, bridge and app in one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

from device.app import run_app
from device.clock import SYSTEM_CLOCK, ScaledClock
from device.config import Config
from device.modbus.registermap import load_map
from device.ports import free_port
from device.services.bridge import run_bridge
from device.services.brokers import local_broker as start_local_broker
from device.simulator import PhysicsSettings, Simulator

log = structlog.get_logger(__name__)
DEMO_BAUD = 115200


@contextlib.asynccontextmanager
async def local_broker(cfg: Config) -> AsyncIterator[Config]:
    """The configured broker, or a local one of this run's own when ``mqtt.host`` is empty."""
    if cfg.mqtt.host:
        yield cfg
        return
    async with start_local_broker(cfg.mqtt.port) as port:
        yield cfg.replace(mqtt={"host": "127.0.0.1", "port": port})


async def run_simulated(cfg: Config, stop: asyncio.Event, *, speed: float = 1.0, start: float | None = None) -> None:
    """Everything in one process against the built-in simulator (local runs, demos).

    ``speed`` above 1 or a ``start`` time (epoch seconds) runs the appliance on demo time: the
    simulated inverter, the quarter-hours, plans, settlement and the pages all on one
    :class:`~device.clock.ScaledClock`, so a day with its savings passes in 24 minutes at 60x.
    """
    clock = SYSTEM_CLOCK if speed == 1 and start is None else ScaledClock(speed, start)
    if speed > 1:  # the bridge must read several times a demo minute: the fastest line there is
        cfg = cfg.replace(inverter={"baudrate": DEMO_BAUD})
    regmap = load_map(cfg.inverter.map)
    sim = Simulator(
        regmap,
        physics=PhysicsSettings(
            latitude=cfg.device.latitude, longitude=cfg.device.longitude, timezone=cfg.device.timezone
        ),
        baudrate=cfg.inverter.baudrate,
        speed=speed,
        start_time=clock.time(),
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
                group.create_task(run_bridge(cfg, stop, clock=clock), name="bridge")
                group.create_task(run_app(cfg, stop, clock=clock), name="app")
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
