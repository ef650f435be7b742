"""The simulator's ends of the wire: a serial device (RTU), and TCP (RTU over TCP or MBAP).

Each link turns bytes into requests stamped with their arrival time and hands them to the
simulator's line (``Handler``); the line decides when, and whether, a reply goes back. The
serial link reads a non-blocking file descriptor from the event loop (no thread, no blocking
read), and survives the device disappearing: it polls until the path can be opened again, as a
USB adapter that is unplugged and plugged back in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
import tty
from dataclasses import dataclass
from typing import Protocol

import structlog

from device.simulator.frames import (
    MbapError,
    Request,
    RtuSplitter,
    encode_mbap,
    encode_rtu,
    next_mbap,
    parse_rtu,
)

log = structlog.get_logger(__name__)

REOPEN_POLL_S = 0.1


class Handler(Protocol):
    """What a link feeds: the simulator's line."""

    def on_request(self, link: Link, request: Request, arrival: float) -> None: ...

    def on_bytes(self, received: int, garbage: int) -> None: ...


class Link(Protocol):
    rtu: bool

    @property
    def connected(self) -> bool: ...

    def send(self, request: Request, pdu: bytes, corrupt: bool) -> int: ...

    def disconnect(self, down_s: float) -> None: ...


def frame_reply(rtu: bool, request: Request, pdu: bytes, corrupt: bool) -> bytes:
    """Frame a reply PDU; ``corrupt`` breaks the CRC (RTU) or truncates the PDU (MBAP)."""
    if rtu:
        data = encode_rtu(request.unit, pdu)
        return data[:-2] + bytes(b ^ 0xFF for b in data[-2:]) if corrupt else data
    return encode_mbap(request.transaction_id or 0, request.unit, pdu[:-1] if corrupt else pdu)


class _RtuReceiver:
    """RTU framing shared by the serial and the RTU-over-TCP link: silence ends a frame."""

    def __init__(self, handler: Handler, silence_s: float) -> None:
        self.handler = handler
        self.silence_s = silence_s
        self.splitter = RtuSplitter()
        self._last_rx = 0.0

    def receive(self, link: Link, data: bytes, now: float) -> None:
        before = self.splitter.garbage
        if self.splitter.buffer and now - self._last_rx > self.silence_s:
            self.splitter.clear()  # an incomplete frame followed by silence is line noise
        self._last_rx = now
        self.splitter.feed(data, now)
        frames = []
        while (found := self.splitter.next_frame()) is not None:
            frames.append(found)
        self.handler.on_bytes(len(data), self.splitter.garbage - before)
        for frame, arrival in frames:
            self.handler.on_request(link, parse_rtu(frame), arrival)


@dataclass(frozen=True)
class LineSettings:
    baudrate: int
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1


def _configure(fd: int, line: LineSettings) -> None:
    """Raw mode with the line's character format; a real adapter needs it, a pty ignores it."""
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    cflag = attrs[2] & ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= (termios.CS7 if line.bytesize == 7 else termios.CS8) | termios.CLOCAL | termios.CREAD
    if line.parity != "N":
        cflag |= termios.PARENB | (termios.PARODD if line.parity == "O" else 0)
    if line.stopbits == 2:
        cflag |= termios.CSTOPB
    attrs[2] = cflag
    speed = getattr(termios, f"B{line.baudrate}", None)
    if speed is not None:
        attrs[4] = attrs[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    termios.tcflush(fd, termios.TCIOFLUSH)  # nothing stale from before a reconnect


class SerialLink:
    """Modbus RTU on a serial device or pty, opened non-blocking and read from the loop."""

    rtu = True

    def __init__(self, handler: Handler, path: str, line: LineSettings, silence_s: float) -> None:
        self.path = path
        self.line = line
        self._receiver = _RtuReceiver(handler, silence_s)
        self._fd: int | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        """Open the device now; raises ``OSError`` if it is not there."""
        fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        with contextlib.suppress(termios.error):  # not a terminal (a FIFO in an experiment): raw bytes anyway
            _configure(fd, self.line)
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)
        log.info("simulator_serial_open", path=self.path)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc.strerror or str(exc))
            return
        if not data:
            self._lost("end of file")
            return
        self._receiver.receive(self, data, asyncio.get_running_loop().time())

    def send(self, request: Request, pdu: bytes, corrupt: bool) -> int:
        data = frame_reply(True, request, pdu, corrupt)
        if self._fd is None:
            return 0
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                self._lost(exc.strerror or str(exc))
            return 0
        # A reply is at most 256 bytes and the tty buffer holds kilobytes: a short write means
        # the other end stopped reading, which a real line does not notice either.
        return written

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def _lost(self, reason: str) -> None:
        log.warning("simulator_serial_lost", path=self.path, reason=reason)
        self.disconnect(REOPEN_POLL_S)

    def disconnect(self, down_s: float) -> None:
        """Close the device and open it again after ``down_s`` (as soon as it exists)."""
        self._close_fd()
        if not self._closing and (self._reopen is None or self._reopen.done()):
            self._reopen = asyncio.get_running_loop().create_task(self._reopen_after(down_s))

    async def _reopen_after(self, down_s: float) -> None:
        await asyncio.sleep(down_s)
        while not self._closing:
            try:
                self.open()
                return
            except OSError:
                await asyncio.sleep(REOPEN_POLL_S)

    async def close(self) -> None:
        self._closing = True
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
        self._close_fd()


class TcpLink(asyncio.Protocol):
    """One TCP connection: RTU frames over TCP (``rtu``) or Modbus TCP with MBAP headers."""

    def __init__(self, handler: Handler, rtu: bool, silence_s: float) -> None:
        self.handler = handler
        self.rtu = rtu
        self._receiver = _RtuReceiver(handler, silence_s)
        self._mbap = bytearray()
        self._transport: asyncio.Transport | None = None

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        log.debug("simulator_tcp_connected", peer=transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        if self.rtu:
            self._receiver.receive(self, data, now)
            return
        self._mbap += data
        requests = []
        try:
            while (request := next_mbap(self._mbap)) is not None:
                requests.append(request)
        except MbapError as exc:
            log.warning("simulator_tcp_not_modbus", reason=str(exc))
            self.handler.on_bytes(len(data), len(self._mbap))
            self.disconnect(0.0)
            return
        self.handler.on_bytes(len(data), 0)
        for request in requests:
            self.handler.on_request(self, request, now)

    def send(self, request: Request, pdu: bytes, corrupt: bool) -> int:
        if not self.connected:
            return 0
        assert self._transport is not None
        data = frame_reply(self.rtu, request, pdu, corrupt)
        self._transport.write(data)
        return len(data)

    def disconnect(self, down_s: float) -> None:
        if self._transport is not None:
            self._transport.abort()
