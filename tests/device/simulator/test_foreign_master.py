"""A Modbus master that is not pymodbus (Debian's ``mbpoll``, on libmodbus) reads every shipped map
from the simulator over a socat pty: our framing, CRC and timing are Modbus, not a pymodbus dialect,
and the words it gets decode through the map to what the simulator shows, at every unit id the
map names (Fronius GEN24: the inverter at 1, the meter at 200)."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from device.modbus import codec
from device.modbus.blocks import plan_blocks
from device.modbus.registermap import available_maps, load_map
from device.simulator import Simulator
from tests.conftest import PtyPair

BAUD = 38400
GAP_S = 0.1  # longer than every shipped map's gap_ms
LINE = re.compile(r"^\[(\d+)\]:\s+0x([0-9A-Fa-f]{4})$", re.M)


async def mbpoll(pty: str, unit: int, table: str, start: int, count: int) -> dict[int, int]:
    """Words by address, read once by mbpoll (PDU addressing, raw hex words)."""
    kind = "4:hex" if table == "holding" else "3:hex"
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-m", "rtu", "-b", str(BAUD), "-P", "none", "-a", str(unit), "-t", kind, "-0",
        "-r", str(start), "-c", str(count), "-1", "-o", "2", pty,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    await asyncio.sleep(GAP_S)  # the quiet line the firmware needs before the next master's frame
    assert proc.returncode == 0, (out.decode()[-300:], err.decode())
    return {int(a): int(w, 16) for a, w in LINE.findall(out.decode())}


@pytest.mark.parametrize("family", sorted(available_maps()))
async def test_mbpoll_reads_what_the_map_decodes(family: str, pty_pair: PtyPair) -> None:
    if shutil.which("mbpoll") is None:
        pytest.fail("mbpoll is not installed (bash .ci/run installs it)")
    regmap = load_map(family)
    assert regmap.protocol.gap_s < GAP_S
    # speed: the physics almost frozen, so the image does not move between the two reads
    async with Simulator(regmap, baudrate=BAUD, speed=1e-6) as sim:
        await sim.serve_serial(pty_pair.b)
        for block in plan_blocks(regmap):  # at each device's own unit id (Fronius GEN24's meter: 200)
            unit = regmap.protocol.unit_of(block.device)
            words = await mbpoll(pty_pair.a, unit, block.table, block.start, block.count)
            assert sorted(words) == list(range(block.start, block.start + block.count))
            got = codec.decode_block(block.registers, block.start, [words[a] for a in sorted(words)])
            shown = {reg.name: sim.image.get(reg.name) for reg in block.registers}
            assert got == shown
        for check in regmap.identity:  # the family's proof reads the same to a foreign master
            words = await mbpoll(pty_pair.a, regmap.protocol.unit_of(check.device), check.table, check.address,
                                 check.words)
            assert check.matches(check.found([words[a] for a in sorted(words)]))
        assert set(sim.stats.units) == {unit for _, unit in regmap.protocol.devices} | {regmap.protocol.unit_id}
        assert sim.stats.violations == 0 and sim.stats.exceptions == 0
