"""Block planning: the fewest read transactions that fetch a set of registers.

On a 9600-baud line a transaction costs far more than the words it carries (request, reply
header, CRC, inter-frame gap, firmware latency), so registers are coalesced into blocks. A block
is one FC3/FC4 read of ``count`` addresses of one table of one device (unit id: a map may name
more than one, Fronius GEN24's meter at unit 200) and obeys the map's rules:

- at most ``min(125, protocol.max_block)`` addresses (the Modbus limit, or less if the firmware
  answers shorter reads only);
- between two registers it carries, at most ``protocol.max_gap`` unused addresses (bridging
  costs wire time; some firmware also refuses to read far across undefined addresses);
- no address inside an ``unreadable`` range, nor any word of a register that is not readable
  (write-only registers make firmware answer ILLEGAL ADDRESS for the whole read);
- every register it carries lies wholly inside it. A split register (words at 78 and 80) is
  read as its whole span, so the address between its words belongs to it and is no "gap".

Registers whose spans overlap (the word at 79 inside the split register 78/80) always travel
together; such a group is a *cluster*. A register with a scale-factor register (SunSpec ``W`` and
``W_SF``) spans both, so the two always come in the same read. With clusters sorted by address, a block is a run of
consecutive clusters, and whether a run is allowed only gets harder as it grows. So the greedy
plan, which extends each block while the next cluster still fits, is optimal: the first block
of any valid plan carries a prefix of the clusters no longer than greedy's first block, and
covering a suffix never takes more blocks than covering a longer one. :func:`minimum_block_count`
computes the optimum independently (dynamic programming over every allowed run) so tests and
the benchmark can check the plan against it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from device.modbus.mapmodel import MAIN, MAX_BLOCK, Register, RegisterMap


class BlockError(ValueError):
    """A register cannot be read as asked (unknown, write-only, or no block may hold it)."""


@dataclass(frozen=True)
class Block:
    """One read transaction: ``count`` addresses of ``table`` from ``start``, of ``device``."""

    table: str
    start: int
    count: int
    registers: tuple[Register, ...]
    device: str = MAIN

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.start + self.count


@dataclass(frozen=True)
class _Cluster:
    start: int
    end: int
    registers: tuple[Register, ...]


class _Forbidden:
    """Addresses of one table of one device a read must not touch, as merged sorted intervals
    [lo, hi): the map's ``unreadable`` ranges (the main device's) and write-only registers."""

    def __init__(self, regmap: RegisterMap, device: str, table: str) -> None:
        spans = [(lo, hi + 1) for lo, hi in regmap.unreadable.get(table, ())] if device == MAIN else []
        spans += [
            (a, a + 1) for r in regmap.registers.values()
            if (r.device, r.table) == (device, table) and not r.readable for a in r.addresses
        ]
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        self._starts = [lo for lo, _ in merged]
        self._spans = merged

    def hits(self, start: int, end: int) -> bool:
        """Whether any forbidden address lies in [start, end)."""
        i = bisect.bisect_right(self._starts, end - 1) - 1
        return i >= 0 and self._spans[i][1] > start


def plan_blocks(regmap: RegisterMap, registers: Iterable[Register | str] | None = None) -> list[Block]:
    """The fewest blocks that read ``registers`` (default: every readable register of the map).

    Blocks come sorted by device (the main one first), table, then address; each carries the
    requested registers it holds.
    Raises :class:`BlockError` for an unknown or write-only register.
    """
    limit, max_gap = _limits(regmap)
    blocks = []
    for (device, table), clusters in _clusters(regmap, registers).items():
        forbidden = _Forbidden(regmap, device, table)
        i = 0
        while i < len(clusters):
            first = clusters[i]
            _check_alone(first, limit, forbidden, table)
            end, j = first.end, i + 1
            while j < len(clusters):
                nxt = clusters[j]
                if nxt.start - end > max_gap or nxt.end - first.start > limit or forbidden.hits(end, nxt.end):
                    break
                end, j = nxt.end, j + 1
            carried = tuple(r for c in clusters[i:j] for r in c.registers)
            blocks.append(Block(table, first.start, end - first.start, carried, device))
            i = j
    return blocks


def minimum_block_count(regmap: RegisterMap, registers: Iterable[Register | str] | None = None) -> int:
    """The least number of blocks any valid plan needs, by dynamic programming.

    ``best[k]`` is the fewest blocks covering the first ``k`` clusters of a table; the last
    block of such a cover is some allowed run ``i..k-1``, checked from scratch here (not the
    incremental test :func:`plan_blocks` uses), so the two computations stay independent.
    """
    limit, max_gap = _limits(regmap)
    total = 0
    for (device, table), clusters in _clusters(regmap, registers).items():
        forbidden = _Forbidden(regmap, device, table)
        best = [0] + [len(clusters) + 1] * len(clusters)
        for k in range(1, len(clusters) + 1):
            for i in range(k - 1, -1, -1):
                if not _run_allowed(clusters[i:k], limit, max_gap, forbidden):
                    break  # a longer run only adds addresses, so it cannot be allowed either
                best[k] = min(best[k], best[i] + 1)
            if best[k] > len(clusters):
                _check_alone(clusters[k - 1], limit, forbidden, table)
        total += best[-1]
    return total


def _run_allowed(run: Sequence[_Cluster], limit: int, max_gap: int, forbidden: _Forbidden) -> bool:
    start, end = run[0].start, run[-1].end
    gaps = [b.start - a.end for a, b in itertools.pairwise(run)]
    return end - start <= limit and all(g <= max_gap for g in gaps) and not forbidden.hits(start, end)


def _check_alone(cluster: _Cluster, limit: int, forbidden: _Forbidden, table: str) -> None:
    if cluster.end - cluster.start > limit or forbidden.hits(cluster.start, cluster.end):
        names = ", ".join(r.name for r in cluster.registers)
        raise BlockError(
            f"{table} {cluster.start}..{cluster.end - 1} ({names}) cannot be read in one block: "
            f"longer than {limit} addresses or touching an unreadable address"
        )


def _limits(regmap: RegisterMap) -> tuple[int, int]:
    return min(MAX_BLOCK, regmap.protocol.max_block), regmap.protocol.max_gap


def _clusters(
    regmap: RegisterMap, registers: Iterable[Register | str] | None
) -> dict[tuple[str, str], list[_Cluster]]:
    """Requested registers by (device, table), grouped into clusters of overlapping spans, sorted."""
    wanted: dict[str, Register] = {}
    for item in regmap.telemetry_registers() if registers is None else registers:
        reg = regmap.registers.get(item) if isinstance(item, str) else item
        if reg is None:
            raise BlockError(f"unknown register {item!r} in map {regmap.family}")
        if not reg.readable:
            raise BlockError(f"register {reg.name!r} is write-only (access {reg.access!r})")
        wanted[reg.name] = reg
        if reg.scale_factor is not None:  # a value is only readable with its scale factor
            factor = regmap.registers[reg.scale_factor]
            wanted[factor.name] = factor
    result: dict[tuple[str, str], list[_Cluster]] = {}
    for device, table in sorted({(r.device, r.table) for r in wanted.values()}):
        clusters: list[_Cluster] = []
        spans = [(*_span(regmap, r), r) for r in wanted.values() if (r.device, r.table) == (device, table)]
        for start, end, reg in sorted(spans, key=lambda span: span[:2]):
            if clusters and start < clusters[-1].end:
                last = clusters[-1]
                clusters[-1] = _Cluster(last.start, max(last.end, end), (*last.registers, reg))
            else:
                clusters.append(_Cluster(start, end, (reg,)))
        result[device, table] = clusters
    return result


def _span(regmap: RegisterMap, reg: Register) -> tuple[int, int]:
    """The addresses a read of ``reg`` must cover: its words and its scale factor's (SunSpec)."""
    if reg.scale_factor is None:
        return reg.address, reg.end
    factor = regmap.registers[reg.scale_factor]
    return min(reg.address, factor.address), max(reg.end, factor.end)
