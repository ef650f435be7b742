"""The ``bridge`` service (``nattery bridge``): the serial line, telemetry, commands, watchdog.

Runs until ``stop`` is set (SIGTERM/SIGINT), then shuts down in the order that keeps the home
safe: the inverter back to self-consumption first, then buffered readings to disk, then the
``offline`` status, then the connections. Imports only what the bridge needs (see
``device/services/__init__.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import structlog

from device.bridge import Bridge
from device.clock import SYSTEM_CLOCK, Clock
from device.config import Config
from device.journal import ReadingJournal
from device.modbus.client import client_factory
from device.modbus.inverter import Inverter, Limits
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import load_map
from device.modbus.worker import ModbusWorker
from device.services.lifecycle import run_until
from device.store import AsyncStore, Retention

log = structlog.get_logger(__name__)


def line_protocol(cfg: Config, regmap: RegisterMap) -> RegisterMap:
    """The map with the installer's unit id, baud rate, parity and gap between frames applied."""
    changes: dict[str, Any] = {}
    if cfg.inverter.unit_id is not None:
        changes["unit_id"] = cfg.inverter.unit_id
    if cfg.inverter.baudrate is not None:
        changes["baudrate"] = cfg.inverter.baudrate
    if cfg.inverter.parity is not None:
        changes["parity"] = cfg.inverter.parity
    if cfg.inverter.gap_ms is not None:
        changes["gap_s"] = cfg.inverter.gap_ms / 1000
    if not changes:
        return regmap
    return dataclasses.replace(regmap, protocol=dataclasses.replace(regmap.protocol, **changes))


async def run_bridge(cfg: Config, stop: asyncio.Event, *, clock: Clock = SYSTEM_CLOCK) -> None:
    """The ``bridge`` service: the serial line, telemetry, commands and the watchdog.

    ``clock`` runs the bridge's loops (poll, flush, health, watchdog) and stamps readings and
    applied commands; the Modbus worker keeps the system clock, because the line's gaps and
    timeouts are physical.
    """
    regmap = line_protocol(cfg, load_map(cfg.inverter.map))
    worker = ModbusWorker(
        client_factory(cfg.inverter.port, regmap.protocol),
        regmap.protocol,
        port=cfg.inverter.port,
        timeout_s=cfg.inverter.timeout_s,
        retries=cfg.inverter.retries,
    )
    async with AsyncStore(cfg.db_path, Retention.from_settings(cfg.store)) as store, worker:
        inverter = Inverter(regmap, worker, Limits.from_settings(cfg.inverter), clock=clock)
        bridge = Bridge(cfg, inverter, store, worker_stats=worker.stats,
                        journal=ReadingJournal.beside(cfg.db_path), clock=clock)
        log.info("bridge starting", map=regmap.family, port=cfg.inverter.port, device=cfg.device.id)
        await run_until(stop, bridge.run(), bridge.shutdown)
    log.info("bridge stopped")
