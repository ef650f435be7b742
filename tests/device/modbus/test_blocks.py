"""Block planning: valid blocks, the fewest of them, and never a forbidden address.

Each plan is checked by an independent validator written from the rules (not from the
planner's code), its length against ``minimum_block_count`` (dynamic programming), and for
small random maps against a brute-force minimum set cover over every possible block.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import pytest

from device.modbus import codec
from device.modbus.blocks import Block, BlockError, minimum_block_count, plan_blocks
from device.modbus.mapmodel import Protocol, Register, RegisterMap
from device.modbus.registermap import MAPS_DIR, load_map

SHIPPED = sorted(MAPS_DIR.glob("*.yaml"))


def _forbidden(regmap: RegisterMap, space: tuple[str, str]) -> set[int]:
    """Addresses of one (device, table) no read may touch: the map's unreadable ranges (the main
    device's) and write-only registers."""
    device, table = space
    out = {a for lo, hi in regmap.unreadable.get(table, ()) for a in range(lo, hi + 1)} if device == "" else set()
    return out | {a for r in regmap.registers.values() if (r.device, r.table) == space and not r.readable
                  for a in r.addresses}


def _reach(regmap: RegisterMap, reg: Register) -> tuple[int, int]:
    """A register's words, and with a scale factor (SunSpec) everything up to the factor's words:
    the two must come in one read, whatever lies between them."""
    ends = [(reg.address, reg.end)]
    if reg.scale_factor is not None:
        factor = regmap.registers[reg.scale_factor]
        ends.append((factor.address, factor.end))
    return min(lo for lo, _ in ends), max(hi for _, hi in ends)


def _valid_block(regmap: RegisterMap, space: tuple[str, str], start: int, end: int,
                 carried: Sequence[Register]) -> bool:
    """The rules, stated directly: size, no forbidden address, tight ends, short gaps."""
    limit, max_gap = min(125, regmap.protocol.max_block), regmap.protocol.max_gap
    if not carried or end - start > limit or _forbidden(regmap, space) & set(range(start, end)):
        return False
    used = {a for r in carried for a in range(*_reach(regmap, r))}
    if start not in used or end - 1 not in used:
        return False
    run = 0
    for address in range(start, end):
        run = 0 if address in used else run + 1
        if run > max_gap:
            return False
    return True


def _check_plan(regmap: RegisterMap, requested: Sequence[Register], blocks: list[Block]) -> None:
    carried_names = [r.name for b in blocks for r in b.registers]
    assert sorted(carried_names) == sorted(r.name for r in requested), "each register exactly once"
    for block in blocks:
        assert all((r.device, r.table) == (block.device, block.table) for r in block.registers)
        assert all(block.start <= r.address and r.end <= block.end for r in block.registers)
        # every requested register wholly inside the block is carried by it
        inside = [r for r in requested if (r.device, r.table) == (block.device, block.table)
                  and r.address >= block.start and r.end <= block.end]
        assert {r.name for r in inside} == {r.name for r in block.registers}
        assert _valid_block(regmap, (block.device, block.table), block.start, block.end, block.registers), block
        words = [0] * block.count
        assert set(codec.decode_block(block.registers, block.start, words)) == {r.name for r in block.registers}


def _brute_force_minimum(regmap: RegisterMap, requested: Sequence[Register]) -> int:
    """Fewest valid blocks covering ``requested``, over every block [start, end) there is."""
    total = 0
    for space in {(r.device, r.table) for r in requested}:  # each device's tables on their own
        regs = [r for r in requested if (r.device, r.table) == space]
        full = (1 << len(regs)) - 1
        candidates = set()
        for start in {r.address for r in regs}:
            for end in {r.end for r in regs}:
                carried = [i for i, r in enumerate(regs) if r.address >= start and r.end <= end]
                if end > start and _valid_block(regmap, space, start, end, [regs[i] for i in carried]):
                    candidates.add(sum(1 << i for i in carried))
        best = {0: 0}
        frontier = [0]
        while full not in best:
            nxt = []
            for mask in frontier:
                for cand in candidates:
                    if mask | cand not in best:
                        best[mask | cand] = best[mask] + 1
                        nxt.append(mask | cand)
            assert nxt, "no cover exists"
            frontier = nxt
        total += best[full]
    return total


# --- shipped maps ------------------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_map_telemetry_plan_is_valid_and_minimal(path: Path) -> None:
    regmap = load_map(path)
    blocks = plan_blocks(regmap)
    _check_plan(regmap, regmap.telemetry_registers(), blocks)
    assert len(blocks) == minimum_block_count(regmap)
    limit = min(125, regmap.protocol.max_block)
    assert all(b.count <= limit for b in blocks)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_map_role_subset_plan_is_valid_and_minimal(path: Path) -> None:
    regmap = load_map(path)
    names = sorted({name for spec in regmap.roles.values() for name in spec.registers})
    blocks = plan_blocks(regmap, names)
    factors = {regmap.registers[n].scale_factor for n in names} - {None}  # they travel along
    _check_plan(regmap, [regmap.registers[n] for n in sorted(set(names) | factors)], blocks)
    assert len(blocks) == minimum_block_count(regmap, names)


def test_deye_split_counter_is_read_in_one_block_with_its_neighbour() -> None:
    deye = load_map("deye_hybrid_1p")
    blocks = plan_blocks(deye, ["total_grid_import"])
    assert [(b.start, b.count) for b in blocks] == [(78, 3)]
    blocks = plan_blocks(deye, ["grid_frequency", "total_grid_import"])
    assert [(b.start, b.count, len(b.registers)) for b in blocks] == [(78, 3, 2)]


# --- hand-made maps -------------------------------------------------------------------------


def _map(registers: list[Register], *, max_block: int = 125, max_gap: int = 10,
         unreadable: dict[str, tuple[tuple[int, int], ...]] | None = None) -> RegisterMap:
    return RegisterMap(
        family="t", name="t", path=Path("t.yaml"),
        protocol=Protocol(max_block=max_block, max_gap=max_gap),
        registers={r.name: r for r in registers}, roles={}, controls={}, unreadable=unreadable or {},
    )


def _u16(address: int, table: str = "holding", access: str = "r") -> Register:
    return Register(name=f"{table}{address}", address=address, table=table, type="U16", access=access)  # type: ignore[arg-type]


def test_block_size_limit_is_honoured() -> None:
    regs = [_u16(a) for a in range(300)]
    assert [(b.start, b.count) for b in plan_blocks(_map(regs))] == [(0, 125), (125, 125), (250, 50)]
    assert [b.count for b in plan_blocks(_map(regs, max_block=64))] == [64, 64, 64, 64, 44]
    # the Modbus limit wins over a larger map setting
    assert all(b.count <= 125 for b in plan_blocks(_map(regs, max_block=125)))


def test_gap_limit_is_honoured() -> None:
    regs = [_u16(0), _u16(11)]  # ten unused addresses between them
    assert [(b.start, b.count) for b in plan_blocks(_map(regs, max_gap=10))] == [(0, 12)]
    assert [(b.start, b.count) for b in plan_blocks(_map(regs, max_gap=9))] == [(0, 1), (11, 1)]


def test_unreadable_ranges_and_write_only_registers_are_never_read() -> None:
    regs = [_u16(0), _u16(5), _u16(8), _u16(9, access="w"), _u16(10)]
    regmap = _map(regs, unreadable={"holding": ((2, 3),)})
    blocks = plan_blocks(regmap)
    assert [(b.start, b.count) for b in blocks] == [(0, 1), (5, 4), (10, 1)]
    _check_plan(regmap, regmap.telemetry_registers(), blocks)
    assert len(blocks) == minimum_block_count(regmap)


def test_tables_are_planned_separately() -> None:
    regs = [_u16(0), _u16(1, "input"), _u16(2), _u16(3, "input")]
    blocks = plan_blocks(_map(regs))
    assert [(b.table, b.start, b.count) for b in blocks] == [("holding", 0, 3), ("input", 1, 3)]


def test_bad_requests_are_refused() -> None:
    regmap = _map([_u16(0), _u16(1, access="w")])
    with pytest.raises(BlockError, match="write-only"):
        plan_blocks(regmap, ["holding1"])
    with pytest.raises(BlockError, match="unknown register 'nope'"):
        minimum_block_count(regmap, ["nope"])
    assert plan_blocks(regmap, []) == [] and minimum_block_count(regmap, []) == 0


# --- random maps ------------------------------------------------------------------------------


def _random_map(rng: random.Random) -> RegisterMap:
    """Non-overlapping registers (some split, some write-only), holes, unreadable ranges."""
    registers: list[Register] = []
    unreadable: dict[str, list[tuple[int, int]]] = {}
    max_block = rng.choice([3, 5, 8, 16, 40, 64, 125])
    for table in rng.sample(["holding", "input"], rng.randint(1, 2)):
        cursor = rng.randint(0, 20)
        for _ in range(rng.randint(1, 30)):
            gap = rng.choice([0, 0, 1, 2, 3, 5, 8, 13, 30])
            if gap >= 2 and rng.random() < 0.3:
                unreadable.setdefault(table, []).append((cursor + 1, cursor + gap - 1))
            cursor += gap
            name = f"{table}_{cursor}"
            kind = rng.random()
            if kind < 0.15 and max_block >= 3:
                registers.append(Register(name=name, address=cursor, table=table, type="U32",  # type: ignore[arg-type]
                                          word_addresses=(cursor, cursor + 2)))
                if rng.random() < 0.5:
                    registers.append(Register(name=f"{name}_mid", address=cursor + 1, table=table, type="U16"))  # type: ignore[arg-type]
                cursor += 3
            else:
                type_ = rng.choice(["U16", "U16", "S16", "U32", "S32"] + (["U64"] if max_block >= 4 else []))
                access = "w" if table == "holding" and rng.random() < 0.1 else "r"
                registers.append(Register(name=name, address=cursor, table=table, type=type_, access=access))  # type: ignore[arg-type]
                cursor += registers[-1].size
    return _map(registers, max_block=max_block, max_gap=rng.choice([0, 1, 2, 4, 10, 30]),
                unreadable={t: tuple(spans) for t, spans in unreadable.items()})


def test_random_maps_plan_equals_minimum() -> None:
    rng = random.Random(20260522)
    for _ in range(400):
        regmap = _random_map(rng)
        requested = regmap.telemetry_registers()
        if rng.random() < 0.3 and requested:
            requested = rng.sample(requested, rng.randint(1, len(requested)))
        blocks = plan_blocks(regmap, requested)
        _check_plan(regmap, requested, blocks)
        assert len(blocks) == minimum_block_count(regmap, requested)


def test_small_random_maps_plan_equals_brute_force_minimum() -> None:
    rng = random.Random(7)
    checked = 0
    while checked < 200:
        regmap = _random_map(rng)
        requested = regmap.telemetry_registers()
        if not 1 <= len(requested) <= 9:
            continue
        blocks = plan_blocks(regmap, requested)
        assert len(blocks) == _brute_force_minimum(regmap, requested) == minimum_block_count(regmap, requested)
        checked += 1
