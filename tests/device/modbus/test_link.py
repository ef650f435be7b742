"""Link supervision against a real TCP simulator, on simulated time: growing reconnect delays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymodbus.pdu import ModbusPDU

from device.modbus.client import client_factory
from device.modbus.link import Link
from device.modbus.registermap import load_map
from device.simulator import Simulator
from tests.conftest import free_port
from tests.simulated_clock import SimulatedClock


def untraced_packet(_sending: bool, data: bytes) -> bytes:
    return data


def untraced_pdu(_sending: bool, pdu: ModbusPDU) -> ModbusPDU:
    return pdu


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(load_map("deye_hybrid_1p"))
    yield simulator
    await simulator.close()


async def test_reconnect_delay_grows_to_its_cap_and_resets_once_connected(sim: Simulator) -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    clock = SimulatedClock(auto=False)
    protocol = sim.regmap.protocol
    link = Link(client_factory(url, protocol), port=url, reconnect_s=0.5, reconnect_max_s=3.0, clock=clock,
                trace_packet=untraced_packet, trace_pdu=untraced_pdu)
    delays = []
    for _ in range(5):
        assert link.connect_due
        assert await link.connect() is False
        assert not link.connect_due
        delays.append(link.next_connect_in)
        await clock.advance(link.next_connect_in)
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert link.error.startswith("connect: ") and not link.up

    await sim.serve_tcp("127.0.0.1", port, framer="socket")
    assert await link.connect() is True
    assert link.up and link.client is not None and link.reconnects == 0  # the first connection

    await sim.close()  # the inverter's end goes away: the client sees the socket close
    async with asyncio.timeout(10):
        while link.up:
            await asyncio.sleep(0.01)  # real time: waiting for the socket's close, not the clock
            link.check()
    assert link.next_connect_in == 0.5  # the delay started over after the successful connect
    link.close()
