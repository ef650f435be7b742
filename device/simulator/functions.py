"""The Modbus functions the simulated firmware offers (FC 03, 04, 06, 16), on its register image.

Pure request → reply PDU; the line, timing and faults are the server's business. Refusals raise
:class:`ModbusError` with the exception code real firmware sends.
"""

from __future__ import annotations

import struct

from device.modbus.mapmodel import MAIN
from device.simulator import frames as fr
from device.simulator.image import ModbusError, RegisterImage

MAX_READ = 125
MAX_WRITE = 123


def execute(image: RegisterImage, pdu: bytes, device: str = MAIN) -> tuple[bytes, bool]:
    """The reply PDU to ``pdu`` addressed to ``device``, and whether it changed any register."""
    function, data = pdu[0], pdu[1:]
    if function in (fr.READ_HOLDING, fr.READ_INPUT):
        if len(data) != 4:
            raise ModbusError(fr.ILLEGAL_VALUE, "read needs address and count")
        start, count = struct.unpack(">HH", data)
        if not 1 <= count <= MAX_READ:
            raise ModbusError(fr.ILLEGAL_VALUE, f"count {count} outside 1..{MAX_READ}")
        words = image.read("holding" if function == fr.READ_HOLDING else "input", start, count, device)
        return bytes([function, 2 * count]) + struct.pack(f">{count}H", *words), False
    if function == fr.WRITE_SINGLE:
        if len(data) != 4:
            raise ModbusError(fr.ILLEGAL_VALUE, "write needs address and value")
        start, value = struct.unpack(">HH", data)
        image.write(start, [value], device)
        return pdu, True
    if function == fr.WRITE_MULTIPLE:
        if len(data) < 5:
            raise ModbusError(fr.ILLEGAL_VALUE, "write needs address, count and bytes")
        start, count, nbytes = struct.unpack(">HHB", data[:5])
        if not 1 <= count <= MAX_WRITE or nbytes != 2 * count or len(data) != 5 + nbytes:
            raise ModbusError(fr.ILLEGAL_VALUE, f"count {count} with {nbytes} bytes")
        image.write(start, list(struct.unpack(f">{count}H", data[5:])), device)
        return pdu[:5], True
    raise ModbusError(fr.ILLEGAL_FUNCTION, f"function {function} not supported")
