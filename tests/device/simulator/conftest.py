"""Helpers for driving the simulator over a real pty like a master would, byte by byte."""

from __future__ import annotations

import asyncio
import os
import struct
import tty
from collections.abc import AsyncIterator

import pytest

from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import load_map
from device.simulator import Simulator
from device.simulator.frames import encode_rtu
from tests.conftest import PtyPair


class RawPort:
    """The master's end of a pty, without any Modbus library in between."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def read(self, n: int, timeout: float) -> bytes:
        """Up to ``timeout`` seconds for ``n`` bytes; whatever arrived by then."""
        loop = asyncio.get_running_loop()
        buf = bytearray()
        done: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                buf.extend(os.read(self.fd, 4096))
            except BlockingIOError:
                return
            if len(buf) >= n and not done.done():
                done.set_result(None)

        loop.add_reader(self.fd, readable)
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(self.fd)
        return bytes(buf)

    def close(self) -> None:
        os.close(self.fd)


def read_request(address: int, count: int, unit: int = 1, function: int = 3) -> bytes:
    return encode_rtu(unit, struct.pack(">BHH", function, address, count))


def read_reply_length(count: int) -> int:
    return 5 + 2 * count


@pytest.fixture
def deye() -> RegisterMap:
    return load_map("deye_hybrid_1p")


@pytest.fixture
async def serial_sim(deye: RegisterMap, pty_pair: PtyPair) -> AsyncIterator[Simulator]:
    sim = Simulator(deye)
    await sim.serve_serial(pty_pair.b)
    yield sim
    await sim.close()


@pytest.fixture
async def port(pty_pair: PtyPair, serial_sim: Simulator) -> AsyncIterator[RawPort]:
    raw = RawPort(pty_pair.a)
    yield raw
    raw.close()
