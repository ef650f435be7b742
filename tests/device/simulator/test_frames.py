"""RTU/MBAP framing: CRC, frame lengths by function code, resync after garbage."""

from __future__ import annotations

import pytest

from device.simulator.frames import (
    MbapError,
    RtuSplitter,
    crc16,
    crc_ok,
    encode_mbap,
    encode_rtu,
    next_mbap,
    parse_rtu,
    with_crc,
)


def test_crc_matches_the_modbus_reference_frame() -> None:
    # "01 03 00 00 00 01" is sent as ... 84 0A on every Modbus line.
    assert with_crc(bytes.fromhex("010300000001")).hex() == "010300000001840a"
    assert crc16(b"") == 0xFFFF
    assert crc_ok(bytes.fromhex("010300000001840a"))
    assert not crc_ok(bytes.fromhex("010300000001840b"))


def test_splitter_finds_frames_by_function_code_length() -> None:
    read = encode_rtu(1, bytes.fromhex("03003b007d"))
    write = encode_rtu(1, bytes.fromhex("1000f200020400010002"))
    splitter = RtuSplitter()
    splitter.feed(read + write, 10.0)
    assert splitter.next_frame() == (read, 10.0)
    assert splitter.next_frame() == (write, 10.0)
    assert splitter.next_frame() is None
    assert splitter.garbage == 0


def test_splitter_waits_for_the_rest_and_dates_a_frame_by_its_first_byte() -> None:
    write = encode_rtu(1, bytes.fromhex("1000f200020400010002"))
    splitter = RtuSplitter()
    splitter.feed(write[:5], 1.0)
    assert splitter.next_frame() is None
    splitter.feed(write[5:], 1.5)
    assert splitter.next_frame() == (write, 1.0)


def test_splitter_skips_garbage_before_a_valid_frame() -> None:
    read = encode_rtu(1, bytes.fromhex("0300000001"))
    splitter = RtuSplitter()
    splitter.feed(b"\x01\x10\x00\x00\x00\x05\xff\x55" + read, 2.0)  # looks like a long FC16
    assert splitter.next_frame() == (read, 2.0)
    assert splitter.garbage == 8


def test_splitter_delimits_unknown_functions_by_crc() -> None:
    odd = encode_rtu(1, bytes.fromhex("2b0e0100"))  # FC 43: not implemented, still a frame
    splitter = RtuSplitter()
    splitter.feed(odd, 0.0)
    frame, _ = splitter.next_frame() or (b"", 0.0)
    assert parse_rtu(frame).function == 0x2B


def test_clear_drops_an_incomplete_frame() -> None:
    splitter = RtuSplitter()
    splitter.feed(b"\x01\x03\x00", 0.0)
    assert splitter.next_frame() is None
    splitter.clear()
    assert splitter.garbage == 3 and not splitter.buffer


def test_mbap_round_trip_and_rejection() -> None:
    buffer = bytearray(encode_mbap(7, 1, bytes.fromhex("0300000002")))
    request = next_mbap(buffer)
    assert request is not None and request.transaction_id == 7 and request.function == 3
    assert request.rtu_length == 8 and not buffer
    assert next_mbap(bytearray(b"\x00\x01\x00")) is None  # header incomplete
    with pytest.raises(MbapError):
        next_mbap(bytearray(b"\x00\x01\x00\x05\x00\x06\x01\x03\x00\x00\x00"))
