"""Modbus frames as the simulator sees them on the wire: RTU (CRC) and MBAP (Modbus TCP).

The simulator parses frames itself instead of using a library server, so that it controls the
timing and can misbehave on purpose. RTU has no length field, so a request's length follows from
its function code (and the byte count of FC 16). Bytes that do not form a frame with a valid CRC
are garbage: the splitter skips them one byte at a time until a valid frame starts, the way
firmware resynchronises after line noise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

READ_HOLDING = 3
READ_INPUT = 4
WRITE_SINGLE = 6
WRITE_MULTIPLE = 16
FUNCTIONS = (READ_HOLDING, READ_INPUT, WRITE_SINGLE, WRITE_MULTIPLE)

ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_FAILURE = 4

MAX_RTU_FRAME = 256
MBAP_HEADER = 7


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


@dataclass(frozen=True)
class Request:
    """One request: ``unit`` plus the PDU (function code and data), without framing."""

    unit: int
    pdu: bytes
    transaction_id: int | None = None  # MBAP only

    @property
    def function(self) -> int:
        return self.pdu[0]

    @property
    def rtu_length(self) -> int:
        """Characters the request occupies on an RS485 line (unit + PDU + CRC)."""
        return len(self.pdu) + 3


def _expected_rtu_length(buf: bytes | bytearray, start: int) -> int | None:
    """Length of an RTU request starting at ``start``; ``None`` if not yet known."""
    if len(buf) - start < 2:
        return None
    function = buf[start + 1]
    if function in (READ_HOLDING, READ_INPUT, WRITE_SINGLE):
        return 8
    if function == WRITE_MULTIPLE:
        if len(buf) - start < 7:
            return None
        return 9 + buf[start + 6]
    return 0  # unknown function: delimited by a valid CRC only


class RtuSplitter:
    """Cuts a byte stream into RTU frames, skipping garbage, and says when each frame began.

    ``feed`` appends bytes with their arrival time; ``next_frame`` returns ``(frame, t)`` for
    the first complete frame with a valid CRC (the bytes before it are garbage) and the arrival
    time of its first byte, or ``None``. ``clear`` drops an incomplete frame after a silence.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.garbage = 0
        self._base = 0  # stream index of buffer[0]
        self._marks: list[tuple[int, float]] = []  # (stream index of a chunk's first byte, time)

    def feed(self, data: bytes, t: float) -> None:
        self._marks.append((self._base + len(self.buffer), t))
        self.buffer += data

    def clear(self) -> None:
        self._consume(len(self.buffer), garbage=len(self.buffer))

    def _consume(self, count: int, garbage: int) -> None:
        self.garbage += garbage
        del self.buffer[:count]
        self._base += count
        while len(self._marks) > 1 and self._marks[1][0] <= self._base:
            self._marks.pop(0)

    def _time_of(self, index: int) -> float:
        return max((t for start, t in self._marks if start <= index), default=self._marks[0][1])

    def next_frame(self) -> tuple[bytes, float] | None:
        buf = self.buffer
        first_incomplete: int | None = None
        for start in range(len(buf)):
            length = _expected_rtu_length(buf, start)
            if length == 0:
                length = self._crc_delimited(start)
                if length is None and len(buf) - start >= MAX_RTU_FRAME:
                    continue
            if length is None or start + length > len(buf):
                if first_incomplete is None:
                    first_incomplete = start
                continue
            frame = bytes(buf[start : start + length])
            if crc_ok(frame):
                t = self._time_of(self._base + start)
                self._consume(start + length, garbage=start)
                return frame, t
        # Nothing complete: bytes before the first possibly-incomplete frame are garbage.
        drop = len(buf) if first_incomplete is None else first_incomplete
        self._consume(drop, garbage=drop)
        return None

    def _crc_delimited(self, start: int) -> int | None:
        """Shortest length from ``start`` that ends in a valid CRC (running CRC: O(n))."""
        buf = self.buffer
        crc = 0xFFFF
        for k in range(start, min(len(buf) - 2, start + MAX_RTU_FRAME - 2)):
            crc = (crc >> 8) ^ _TABLE[(crc ^ buf[k]) & 0xFF]  # body is buf[start : k + 1]
            if k > start and crc == buf[k + 1] | buf[k + 2] << 8:
                return k + 3 - start
        return None


def parse_rtu(frame: bytes) -> Request:
    return Request(unit=frame[0], pdu=frame[1:-2])


def encode_rtu(unit: int, pdu: bytes) -> bytes:
    return with_crc(bytes([unit]) + pdu)


class MbapError(ValueError):
    """The stream is not Modbus TCP (wrong protocol id or length): the connection is dropped."""


def next_mbap(buffer: bytearray) -> Request | None:
    """Take one MBAP request off ``buffer``; ``None`` until a whole one has arrived."""
    if len(buffer) < MBAP_HEADER:
        return None
    tid, pid, length, unit = struct.unpack(">HHHB", buffer[:MBAP_HEADER])
    if pid != 0 or not 2 <= length <= 254:
        raise MbapError(f"protocol id {pid}, length {length}")
    end = MBAP_HEADER - 1 + length
    if len(buffer) < end:
        return None
    pdu = bytes(buffer[MBAP_HEADER:end])
    del buffer[:end]
    return Request(unit=unit, pdu=pdu, transaction_id=tid)


def encode_mbap(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", transaction_id, 0, len(pdu) + 1, unit) + pdu


def exception_pdu(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])
