"""The pymodbus async client for a configured port URL and a register map's protocol.

Three ways to reach an inverter:

- ``serial:///dev/ttyUSB0`` — RTU over an RS485 adapter; pymodbus drives the port with the
  map's baud rate, parity, byte size and stop bits.
- ``rtu+tcp://host:port`` — RTU frames over TCP (transparent RS485-to-Ethernet converters).
- ``tcp://host:port`` — Modbus TCP (MBAP header, transaction ids).

pymodbus' own retries and reconnects are switched off: the worker (``device.modbus.worker``)
owns both, because only it knows the line discipline (gap, stale-reply guard, backoff).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol as TypingProtocol
from urllib.parse import urlsplit

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.client.base import ModbusBaseClient
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from device.modbus.mapmodel import Protocol

SCHEMES = ("serial", "rtu+tcp", "tcp")
TracePacket = Callable[[bool, bytes], bytes]
TracePdu = Callable[[bool, ModbusPDU], ModbusPDU]


class PortError(ValueError):
    """The inverter port URL is malformed; the message names the value and what is allowed."""


@dataclass(frozen=True)
class Port:
    """A parsed port URL: ``scheme`` is one of :data:`SCHEMES`; ``path`` only for serial."""

    scheme: Literal["serial", "rtu+tcp", "tcp"]
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def framer(self) -> FramerType:
        return FramerType.SOCKET if self.scheme == "tcp" else FramerType.RTU

    @property
    def is_rtu(self) -> bool:
        """RTU frames carry no transaction id: a late reply can pass for the next answer."""
        return self.framer == FramerType.RTU

    def __str__(self) -> str:
        return f"serial://{self.path}" if self.scheme == "serial" else f"{self.scheme}://{self.host}:{self.port}"


def parse_port(url: str) -> Port:
    """Parse ``inverter.port``; raise :class:`PortError` naming the value and the allowed forms."""
    allowed = "serial:///dev/ttyX, rtu+tcp://host:port or tcp://host:port"
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise PortError(f"inverter.port: {url!r} has scheme {parts.scheme!r}; allowed: {allowed}")
    if parts.scheme == "serial":
        if parts.netloc or not parts.path.startswith("/") or parts.path == "/":
            raise PortError(f"inverter.port: {url!r} needs an absolute device path, e.g. serial:///dev/ttyUSB0")
        return Port("serial", path=parts.path)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or port == 0 or parts.path not in ("", "/"):
        raise PortError(f"inverter.port: {url!r} needs host and port (1..65535); allowed: {allowed}")
    return Port(parts.scheme, host=parts.hostname, port=port)  # type: ignore[arg-type]


class ClientFactory(TypingProtocol):
    """Builds a fresh, unconnected client; the worker passes its packet and PDU tracers."""

    def __call__(
        self, *, trace_packet: TracePacket | None = None, trace_pdu: TracePdu | None = None
    ) -> ModbusBaseClient: ...


def make_client(
    port: Port | str,
    protocol: Protocol,
    *,
    trace_packet: TracePacket | None = None,
    trace_pdu: TracePdu | None = None,
) -> ModbusBaseClient:
    """A new, unconnected pymodbus async client for ``port`` with ``protocol``'s line settings.

    ``timeout`` here bounds only connecting: the worker applies its own per-request timeout
    around each call, so pymodbus never retries, never counts "no responses" and never
    reconnects by itself (``reconnect_delay=0``).
    """
    if isinstance(port, str):
        port = parse_port(port)
    # The worker logs link and inverter state transitions; pymodbus would log every failed
    # connect attempt and every ignored late reply again.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    client: ModbusBaseClient
    if port.scheme == "serial":
        client = AsyncModbusSerialClient(
            port.path,
            framer=FramerType.RTU,
            baudrate=protocol.baudrate,
            bytesize=protocol.bytesize,
            parity=protocol.parity,
            stopbits=protocol.stopbits,
            reconnect_delay=0,
            timeout=max(protocol.timeout_s, 1.0),
            retries=0,
            trace_packet=trace_packet,
            trace_pdu=trace_pdu,
        )
    else:
        client = AsyncModbusTcpClient(
            port.host,
            port=port.port,
            framer=port.framer,
            reconnect_delay=0,
            timeout=max(protocol.timeout_s, 1.0),
            retries=0,
            trace_packet=trace_packet,
            trace_pdu=trace_pdu,
        )
    client.set_max_no_responses(2**31)  # never let pymodbus close the link on its own
    return client


def client_factory(port: Port | str, protocol: Protocol) -> ClientFactory:
    """A :class:`ClientFactory` for the worker, validating ``port`` now rather than at connect."""
    parsed = parse_port(port) if isinstance(port, str) else port

    def factory(
        *, trace_packet: TracePacket | None = None, trace_pdu: TracePdu | None = None
    ) -> ModbusBaseClient:
        return make_client(parsed, protocol, trace_packet=trace_packet, trace_pdu=trace_pdu)

    return factory
