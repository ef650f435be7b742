"""The simulator on the wire: every shipped map over Modbus TCP and RTU over a real pty (socat),
line timing, overlap violations and each kind of fault, driven by pymodbus or raw bytes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from device.modbus import codec
from device.modbus.blocks import plan_blocks
from device.modbus.client import client_factory
from device.modbus.inverter import Inverter, Limits
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import available_maps, load_map
from device.simulator import Faults, PhysicsSettings, Simulator
from device.simulator.frames import crc_ok, encode_rtu
from device.modbus.worker import ModbusWorker
from tests.conftest import PtyPair
from tests.device.simulator.conftest import RawPort, read_reply_length, read_request
from tests.simulated_clock import SimulatedClock


async def tcp_sim(regmap: RegisterMap, **kwargs: object) -> tuple[Simulator, AsyncModbusTcpClient]:
    sim = Simulator(regmap, **kwargs)  # type: ignore[arg-type]
    port = await sim.serve_tcp("127.0.0.1", 0, framer="socket")
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await client.connect()
    return sim, client


@pytest.mark.parametrize("transport", ["tcp", "serial"])
@pytest.mark.parametrize("family", sorted(available_maps()))
async def test_profile_every_map_reads_back_the_physics(
    family: str, transport: str, request: pytest.FixtureRequest
) -> None:
    """Each family's simulator profile test: the planned blocks read, and decode to the physics."""
    regmap = load_map(family)
    # Nearly frozen simulated time, fast line: values stay put while the blocks are read.
    options = {"baudrate": 115200, "speed": 1e-6, "physics": PhysicsSettings(initial_soc_pct=73.0)}
    client: AsyncModbusTcpClient | AsyncModbusSerialClient
    if transport == "tcp":
        sim, client = await tcp_sim(regmap, **options)
    else:
        pair: PtyPair = request.getfixturevalue("pty_pair")
        sim = Simulator(regmap, **options)  # type: ignore[arg-type]
        await sim.serve_serial(pair.b)
        client = AsyncModbusSerialClient(pair.a, baudrate=115200, timeout=2, retries=0)
        assert await client.connect()
    try:
        values: dict[str, float | None] = {}
        for block in plan_blocks(regmap):
            await asyncio.sleep(regmap.protocol.gap_s)
            reply = await (client.read_holding_registers if block.table == "holding"
                           else client.read_input_registers)(block.start, count=block.count,
                                                             device_id=regmap.protocol.unit_of(block.device))
            assert not reply.isError(), (block, reply)
            values.update(codec.decode_block(block.registers, block.start, reply.registers))
        assert set(values) == {r.name for r in regmap.telemetry_registers()}
        roles = codec.semantic(regmap, values)
        expected = sim.physics.roles()
        for role, value in roles.items():
            if role == "state":
                assert regmap.registers[regmap.roles[role].registers[0]].enum.get(int(value or 0)), value
                continue
            resolution = sum(abs(regmap.registers[n].scale) for n in regmap.roles[role].registers)
            assert value == pytest.approx(expected[role], abs=resolution), role
        assert roles["soc_pct"] == pytest.approx(73.0, abs=0.5)
        assert sim.stats.violations == 0 and sim.stats.exceptions == 0
    finally:
        client.close()
        await sim.close()


@pytest.mark.parametrize("family", sorted(available_maps()))
async def test_controls_written_over_tcp_switch_the_mode(family: str) -> None:
    """Every control's writes, one request each, recognised as its mode. The firmware's gap between
    frames is not what this proves (the gap tests below do): without it the up to ~30 writes of a
    control no longer wait 50 ms each."""
    regmap = load_map(family)
    sim, client = await tcp_sim(regmap, baudrate=115200, gap_s=0.0)
    try:
        for mode in ("charge", "hold", "discharge", "self_consumption"):
            params = {"power_w": 2000.0} if regmap.controls[mode].params else {}
            for write in regmap.controls[mode].writes:
                reg = sim.image.resolved(regmap.registers[write.register])  # SunSpec: the device's scale factor
                readings = {name: sim.image.get(name) for name in write.inputs}  # as the bridge reads them
                words = codec.encode(reg, write.resolve(params, readings))
                unit = regmap.protocol.unit_of(reg.device)
                reply = await (client.write_register(reg.address, words[0], device_id=unit)
                               if len(words) == 1 and reg.addresses == (reg.address,)
                               else client.write_registers(reg.address, words, device_id=unit))
                assert not reply.isError(), (write, reply)
            assert sim.mode == mode
            assert sim.mode_params == pytest.approx(params, abs=50)
        assert sim.stats.functions[6] > 0 or sim.stats.functions[16] > 0
        assert sim.stats.violations == 0
    finally:
        client.close()
        await sim.close()


@pytest.fixture
async def serial_client(pty_pair: PtyPair, serial_sim: Simulator) -> AsyncIterator[AsyncModbusSerialClient]:
    client = AsyncModbusSerialClient(pty_pair.a, baudrate=9600, timeout=1.0, retries=0)
    assert await client.connect()
    yield client
    client.close()


async def test_a_charge_command_over_rtu_raises_the_soc(
    serial_sim: Simulator, serial_client: AsyncModbusSerialClient, deye: RegisterMap
) -> None:
    serial_sim.speed = 3600.0  # an hour per second
    soc = deye.registers["battery_soc"]

    async def read_soc() -> float:
        await asyncio.sleep(deye.protocol.gap_s)
        reply = await serial_client.read_holding_registers(soc.address, count=1)
        return codec.decode(soc, reply.registers)

    for write in deye.controls["charge"].writes:
        reg = deye.registers[write.register]
        await asyncio.sleep(deye.protocol.gap_s)
        readings = {name: serial_sim.image.get(name) for name in write.inputs}
        reply = await serial_client.write_registers(
            reg.address, codec.encode(reg, write.resolve({"power_w": 3000}, readings)))
        assert not reply.isError()
    assert serial_sim.mode == "charge" and serial_sim.mode_params["power_w"] == 3000
    before = await read_soc()
    await asyncio.sleep(0.5)
    after = await read_soc()
    assert after > before + 5  # 3 kW into 10 kWh for ~half an hour of simulated time
    assert serial_sim.physics.flows.battery_w == pytest.approx(-3000)
    assert serial_sim.stats.violations == 0


async def test_a_125_register_read_takes_its_wire_time(serial_sim: Simulator, port: RawPort) -> None:
    # 8 request + 255 reply characters of 10 bits at 9600 baud, plus the firmware's 5 ms.
    started = time.monotonic()
    port.write(read_request(150, 125))
    reply = await port.read(read_reply_length(125), timeout=3)
    elapsed = time.monotonic() - started
    assert len(reply) == 255 and crc_ok(reply)
    assert elapsed >= 0.26
    assert serial_sim.stats.transactions == 1 and serial_sim.stats.bytes_out == 255


async def test_back_to_back_frames_are_an_overlap_violation(serial_sim: Simulator, port: RawPort) -> None:
    port.write(read_request(184, 1) + read_request(190, 1))  # no gap at all
    assert await port.read(1, timeout=0.5) == b""  # first garbled by the second, second dropped
    assert serial_sim.stats.violations == 1 and serial_sim.stats.disturbed == 1
    await asyncio.sleep(serial_sim.gap_s)
    port.write(read_request(184, 1))
    assert crc_ok(await port.read(read_reply_length(1), timeout=2))
    assert serial_sim.stats.violations == 1


async def test_a_request_inside_the_gap_is_dropped_and_counted(serial_sim: Simulator, port: RawPort) -> None:
    port.write(read_request(184, 1))
    first = await port.read(read_reply_length(1), timeout=2)
    port.write(read_request(184, 1))  # right after the reply: the 50 ms gap not kept
    assert await port.read(1, timeout=0.3) == b""
    assert crc_ok(first) and serial_sim.stats.violations == 1 and serial_sim.stats.disturbed == 0


async def test_violations_can_get_a_corrupt_reply(serial_sim: Simulator, port: RawPort) -> None:
    serial_sim.violation_reply = "corrupt"
    port.write(read_request(184, 1))
    await port.read(read_reply_length(1), timeout=2)
    port.write(read_request(184, 1))
    garbled = await port.read(read_reply_length(1), timeout=2)
    assert len(garbled) == read_reply_length(1) and not crc_ok(garbled)
    assert serial_sim.stats.violations == 1


async def test_garbage_and_foreign_units_are_skipped(serial_sim: Simulator, port: RawPort) -> None:
    port.write(b"\xff\x00\x13\x37" + read_request(184, 1, unit=7))
    assert await port.read(1, timeout=0.3) == b""
    port.write(b"\x55\xaa" + read_request(184, 1))
    reply = await port.read(read_reply_length(1), timeout=2)
    assert crc_ok(reply) and reply[0] == 1
    assert serial_sim.stats.foreign == 1 and serial_sim.stats.garbage_bytes >= 6


async def test_refusals_carry_modbus_exception_codes(
    serial_sim: Simulator, serial_client: AsyncModbusSerialClient, deye: RegisterMap
) -> None:
    gap = deye.protocol.gap_s
    outside = await serial_client.read_holding_registers(279, count=2)  # past the last register
    await asyncio.sleep(gap)
    read_only = await serial_client.write_register(deye.registers["battery_soc"].address, 1)
    await asyncio.sleep(gap)
    too_high = await serial_client.write_register(deye.registers["limit_control"].address, 7)
    assert [r.exception_code for r in (outside, read_only, too_high)] == [2, 2, 3]
    assert serial_sim.stats.exceptions == 3


async def test_a_read_of_more_than_125_registers_is_an_illegal_value(serial_sim: Simulator, port: RawPort) -> None:
    port.write(read_request(150, 126))  # pymodbus would not even send this
    assert await port.read(5, timeout=2) == encode_rtu(1, bytes([0x83, 3]))


async def test_fault_no_reply(serial_sim: Simulator, serial_client: AsyncModbusSerialClient) -> None:
    serial_sim.faults.arm("no_reply", 1)
    with pytest.raises(ModbusIOException):
        await serial_client.read_holding_registers(184, count=1)
    await asyncio.sleep(0.1)
    assert not (await serial_client.read_holding_registers(184, count=1)).isError()
    assert serial_sim.stats.faults["no_reply"] == 1


async def test_fault_exception_code(serial_sim: Simulator, serial_client: AsyncModbusSerialClient) -> None:
    serial_sim.faults.exception_code = 6
    serial_sim.faults.arm("exception", 1)
    reply = await serial_client.read_holding_registers(184, count=1)
    assert reply.isError() and reply.exception_code == 6


async def test_fault_corrupt_crc(serial_sim: Simulator, port: RawPort) -> None:
    serial_sim.faults.arm("corrupt_crc", 1)
    port.write(read_request(184, 1))
    reply = await port.read(read_reply_length(1), timeout=2)
    assert len(reply) == read_reply_length(1) and not crc_ok(reply)


async def test_fault_late_reply_arrives_after_the_next_request(serial_sim: Simulator, port: RawPort) -> None:
    serial_sim.faults.late_delay_s = 0.6
    serial_sim.faults.arm("late", 1)
    port.write(read_request(184, 1))  # SoC: one register
    assert await port.read(1, timeout=0.3) == b""  # the master times out here...
    port.write(read_request(150, 3))  # ...and asks something else
    late = await port.read(read_reply_length(1), timeout=2)
    # What arrives is the answer to the first request (1 register), not to the second.
    assert crc_ok(late) and late[2] == 2 and len(late) == read_reply_length(1)
    assert await port.read(1, timeout=0.2) == b""
    assert serial_sim.stats.violations == 1  # the second request came while the line was busy


async def test_fault_defective_never_answers(serial_sim: Simulator, port: RawPort) -> None:
    serial_sim.faults.defective = True
    for _ in range(2):
        port.write(read_request(184, 1))
        assert await port.read(1, timeout=0.2) == b""
    serial_sim.faults.defective = False
    port.write(read_request(184, 1))
    assert crc_ok(await port.read(read_reply_length(1), timeout=2))


async def test_fault_disconnect_closes_and_reopens_the_serial_port(serial_sim: Simulator, port: RawPort) -> None:
    serial_sim.faults.disconnect_down_s = 0.3
    serial_sim.faults.arm("disconnect", 1)
    port.write(read_request(184, 1))
    assert await port.read(1, timeout=0.2) == b""
    await asyncio.sleep(0.4)
    port.write(read_request(184, 1))
    assert crc_ok(await port.read(read_reply_length(1), timeout=2))
    assert serial_sim.stats.disconnects == 1


async def test_mbap_corrupt_reply_is_refused_by_the_client(deye: RegisterMap) -> None:
    sim = Simulator(deye, baudrate=115200, faults=Faults(corrupt_crc=1.0))
    port = await sim.serve_tcp("127.0.0.1", 0, framer="socket")
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    try:
        assert await client.connect()
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(150, count=4)
        assert sim.stats.faults["corrupt_crc"] == 1
    finally:
        client.close()
        await sim.close()


async def test_unknown_functions_are_refused(serial_sim: Simulator, port: RawPort) -> None:
    port.write(encode_rtu(1, bytes([43, 14, 1, 0])))  # read device identification: not offered
    assert await port.read(5, timeout=2) == encode_rtu(1, bytes([43 | 0x80, 1]))


async def test_a_forced_control_lapses_after_the_firmwares_timeout() -> None:
    """KOSTAL's map: external control not written again within protocol.control_timeout_s
    (60 s) falls back to the inverter's own operation; a write within it keeps it."""
    kostal = load_map("kostal_plenticore")
    clock = SimulatedClock(auto=False)
    sim = Simulator(kostal, clock=clock)
    port = await sim.serve_tcp("127.0.0.1", 0, "socket")
    try:
        url = f"tcp://127.0.0.1:{port}"
        async with ModbusWorker(client_factory(url, kostal.protocol), kostal.protocol, port=url) as worker:
            inverter = Inverter(kostal, worker, Limits(5000, 5000))
            await inverter.apply("charge", power_w=2000)
            await clock.advance(59)
            sim.step()
            assert sim.mode == "charge"
            await inverter.apply("charge", power_w=2000)  # written again: another 60 s
            await clock.advance(59)
            sim.step()
            assert sim.mode == "charge"
            await clock.advance(1)
            sim.step()
        assert sim.mode == "self_consumption"
        assert sim.image.get("battery_power_setpoint") == 0.0
    finally:
        await sim.close()
