"""The simulator's links: serial (pty) reopened after an unplug, RTU over TCP and Modbus TCP
connections, closed by a disconnect fault or on shutdown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from device.modbus.mapmodel import RegisterMap
from device.simulator import Faults, Simulator
from device.simulator.frames import crc_ok
from tests.conftest import PtyPair, open_pty_pair
from tests.device.simulator.conftest import RawPort, read_reply_length, read_request


async def test_the_serial_port_comes_back_after_the_adapter_was_unplugged(
    serial_sim: Simulator, pty_pair: PtyPair
) -> None:
    pty_pair.close()  # socat gone: both ends of the line disappear
    await asyncio.sleep(0.3)
    pair = open_pty_pair(Path(pty_pair.a).parent)
    try:
        raw = RawPort(pair.a)
        deadline = time.monotonic() + 5
        reply = b""
        while not reply and time.monotonic() < deadline:
            raw.write(read_request(184, 1))
            reply = await raw.read(read_reply_length(1), timeout=0.3)
        assert crc_ok(reply)
        raw.close()
    finally:
        pair.close()



async def test_rtu_over_tcp_and_modbus_tcp_answer_pymodbus(deye: RegisterMap) -> None:
    from pymodbus import FramerType

    sim = Simulator(deye, baudrate=115200)
    rtu_port = await sim.serve_tcp("127.0.0.1", 0, framer="rtu")
    mbap_port = await sim.serve_tcp("127.0.0.1", 0, framer="socket")
    rtu = AsyncModbusTcpClient("127.0.0.1", port=rtu_port, framer=FramerType.RTU, timeout=2, retries=0)
    mbap = AsyncModbusTcpClient("127.0.0.1", port=mbap_port, timeout=2, retries=0)
    try:
        assert await rtu.connect() and await mbap.connect()
        a = await rtu.read_holding_registers(184, count=1)
        await asyncio.sleep(deye.protocol.gap_s)
        b = await mbap.read_holding_registers(184, count=1)
        assert a.registers == b.registers == [round(sim.battery.soc_pct)]
        assert sim.stats.transactions == 2 and sim.stats.violations == 0
    finally:
        rtu.close()
        mbap.close()
        await sim.close()



async def test_close_drops_open_connections(deye: RegisterMap) -> None:
    sim = Simulator(deye)
    port = await sim.serve_tcp("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(sim.close(), 5)
    assert await asyncio.wait_for(reader.read(10), 2) == b""
    writer.close()



async def test_fault_disconnect_closes_the_tcp_connection(deye: RegisterMap) -> None:
    sim = Simulator(deye, faults=Faults(disconnect=1.0), baudrate=115200)
    port = await sim.serve_tcp("127.0.0.1", 0, framer="rtu")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(read_request(184, 1))
        assert await asyncio.wait_for(reader.read(100), 2) == b""  # closed by the firmware
        writer.close()
        sim.faults.disconnect = 0.0
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(deye.protocol.gap_s)  # the line behind the gateway still needs its gap
        writer.write(read_request(184, 1))
        assert crc_ok(await asyncio.wait_for(reader.readexactly(read_reply_length(1)), 2))
        writer.close()
        assert sim.stats.disconnects == 1
    finally:
        await sim.close()
