"""Port URLs and the clients made from them (real pymodbus clients; connecting is tested in test_worker)."""

from __future__ import annotations

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerRTU, FramerSocket

from device.modbus.client import Port, PortError, client_factory, make_client, parse_port
from device.modbus.mapmodel import Protocol


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("serial:///dev/ttyUSB0", Port("serial", path="/dev/ttyUSB0")),
        ("rtu+tcp://10.0.0.7:8899", Port("rtu+tcp", host="10.0.0.7", port=8899)),
        ("tcp://inverter.lan:502", Port("tcp", host="inverter.lan", port=502)),
    ],
)
def test_parse_port(url: str, port: Port) -> None:
    assert parse_port(url) == port
    assert str(port) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/dev/ttyUSB0", "scheme ''"),
        ("modbus://host:502", "scheme 'modbus'"),
        ("serial://dev/ttyUSB0", "absolute device path"),
        ("serial:///", "absolute device path"),
        ("tcp://host", "needs host and port"),
        ("tcp://:502", "needs host and port"),
        ("rtu+tcp://host:99999", "needs host and port"),
        ("tcp://host:0", "needs host and port"),
        ("tcp://host:502/x", "needs host and port"),
    ],
)
def test_bad_port_urls_name_value_and_allowed_forms(url: str, message: str) -> None:
    with pytest.raises(PortError) as info:
        parse_port(url)
    assert message in str(info.value)
    assert repr(url) in str(info.value)
    assert str(info.value).startswith("inverter.port:")


async def test_serial_client_uses_the_maps_line_settings_and_no_pymodbus_retries() -> None:
    protocol = Protocol(baudrate=19200, parity="E", stopbits=1, timeout_s=1.5)
    client = make_client("serial:///dev/ttyUSB7", protocol)
    assert isinstance(client, AsyncModbusSerialClient)
    params = client.ctx.comm_params
    assert (params.host, params.baudrate, params.parity, params.stopbits) == ("/dev/ttyUSB7", 19200, "E", 1)
    assert isinstance(client.ctx.framer, FramerRTU)
    assert client.ctx.retries == 0
    assert not params.reconnect_delay  # the worker reconnects, pymodbus must not


@pytest.mark.parametrize(("url", "framer"), [("rtu+tcp://127.0.0.1:1502", FramerRTU),
                                             ("tcp://127.0.0.1:502", FramerSocket)])
async def test_tcp_clients_pick_the_framer_from_the_scheme(url: str, framer: type) -> None:
    client = client_factory(url, Protocol())()
    assert isinstance(client, AsyncModbusTcpClient)
    assert isinstance(client.ctx.framer, framer)
    assert client.ctx.retries == 0


def test_factory_validates_the_url_up_front() -> None:
    with pytest.raises(PortError):
        client_factory("usb:/dev/ttyUSB0", Protocol())
