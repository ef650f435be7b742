"""The firmware's Modbus functions on the register image, without a line in between."""

from __future__ import annotations

import struct

import pytest

from device.modbus.mapmodel import RegisterMap
from device.simulator.functions import execute
from device.simulator.image import ModbusError, RegisterImage


def test_reads_writes_and_their_replies(deye: RegisterMap) -> None:
    image = RegisterImage(deye)
    address = deye.registers["prog1_power"].address
    single = struct.pack(">BHH", 6, address, 1234)
    assert execute(image, single) == (single, True)
    multiple = struct.pack(">BHHBHH", 16, address, 1, 2, 2345, 0)[:-2]
    assert execute(image, multiple) == (multiple[:5], True)
    reply, wrote = execute(image, struct.pack(">BHH", 3, address, 1))
    assert reply == bytes([3, 2]) + (2345).to_bytes(2, "big") and not wrote


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        (struct.pack(">BH", 3, 0), 3),  # read without a count
        (struct.pack(">BHH", 3, 184, 0), 3),
        (struct.pack(">BHHBH", 16, 256, 2, 2, 1), 3),  # byte count does not match
        (struct.pack(">BHH", 4, 184, 1), 2),  # the Deye map has no input registers
        (bytes([8, 0, 0]), 1),  # diagnostics: not offered
    ],
)
def test_malformed_requests_are_refused(deye: RegisterMap, pdu: bytes, code: int) -> None:
    with pytest.raises(ModbusError) as exc:
        execute(RegisterImage(deye), pdu)
    assert exc.value.code == code
