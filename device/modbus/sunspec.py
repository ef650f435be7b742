"""SunSpec devices: finding the models on the wire and placing the map's points on them.

A SunSpec device answers the text ``SunS`` at a base address (40000, else 0 or 50000), followed
by a chain of models, each its ID, its length L and L registers, up to the end marker 0xFFFF.
Which models a device has, and in which order, differs by vendor and firmware (Fronius puts 120-123
between its inverter and MPPT models, SMA others), so a SunSpec map names its points by model and
offset (``model: 103, model_offset: 14`` is W; offset 0 is the model's ID) instead of by address.

:func:`rebase` gives every point its address for one layout (the loader uses the map's nominal
layout, so that the map can be checked and served by the simulator); :func:`locate` reads the
device's real layout, refuses a device without the map's models, and rebases the map onto it.
The identity checks of a SunSpec map are the marker, each model's header and the end marker,
generated here for the layout in use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

from device.modbus.mapmodel import IdentityCheck, RegisterMap, SunSpecLayout
from device.modbus.requests import ExceptionReply

MARKER = "SunS"
END = 0xFFFF
MAX_MODELS = 64  # no device chains more; a chain without an end marker is refused past this
IDENTITY_PREFIX = "sunspec_"

Read = Callable[[int, int], Awaitable[Sequence[int]]]


class SunSpecError(ValueError):
    """The device is no SunSpec device with the map's models; the text says what was found."""


def needed_lengths(regmap: RegisterMap) -> dict[int, int]:
    """The least length L of each model that holds every point the map reads or writes there."""
    needed = {model: 0 for model, _ in regmap.sunspec.chain} if regmap.sunspec else {}
    for reg in regmap.registers.values():
        if reg.model is not None:
            needed[reg.model] = max(needed.get(reg.model, 0), reg.model_offset + reg.size - 2)
    return needed


def identity_checks(layout: SunSpecLayout, models: Sequence[int]) -> tuple[IdentityCheck, ...]:
    """The marker, the header (ID, L) of each of ``models`` and the end marker, where ``layout``
    puts them: what proves the device is the SunSpec device the map was placed on."""
    starts = dict(layout.starts())
    lengths = dict(layout.chain)
    checks = [IdentityCheck(f"{IDENTITY_PREFIX}marker", "holding", layout.base, 2, prefixes=(MARKER,))]
    for model in models:
        code = (model << 16) | lengths[model]
        checks.append(IdentityCheck(f"{IDENTITY_PREFIX}model_{model}", "holding", starts[model], 2,
                                    values={code: f"model {model}, {lengths[model]} registers"}))
    checks.append(IdentityCheck(f"{IDENTITY_PREFIX}end", "holding", layout.end, 2,
                                values={END << 16: "end of the SunSpec models"}))
    return tuple(checks)


def rebase(regmap: RegisterMap, layout: SunSpecLayout) -> RegisterMap:
    """``regmap`` with every SunSpec point at its address in ``layout`` and the identity checks
    for it. ``layout`` must hold every model of the map (see :func:`locate`)."""
    starts = layout.starts()
    registers = {
        name: reg if reg.model is None else dataclasses.replace(reg, address=starts[reg.model] + reg.model_offset)
        for name, reg in regmap.registers.items()
    }
    assert regmap.sunspec is not None
    models = [model for model, _ in regmap.sunspec.chain]
    own = tuple(c for c in regmap.identity if not c.name.startswith(IDENTITY_PREFIX))
    return dataclasses.replace(regmap, registers=registers, sunspec=layout,
                               identity=own + identity_checks(layout, models))


async def locate(regmap: RegisterMap, read: Read) -> RegisterMap:
    """Find the marker at the map's base addresses, walk the model chain and rebase the map onto
    it; :class:`SunSpecError` naming what was found if a model is missing or too short."""
    layout = regmap.sunspec
    assert layout is not None
    found = []
    for base in layout.bases:
        try:
            words = await read(base, 2)
        except ExceptionReply as exc:
            found.append(f"{base}: exception {exc.code}")
            continue
        text = b"".join(w.to_bytes(2, "big") for w in words).decode("ascii", "replace")
        if text != MARKER:
            found.append(f"{base}: {text!r}")
            continue
        chain = await _walk(read, base)
        _check(regmap, chain, base)
        return rebase(regmap, SunSpecLayout(layout.bases, chain, base, located=True))
    raise SunSpecError(f"not a SunSpec device (map {regmap.family}): no {MARKER!r} marker at "
                       + ", ".join(found))


async def _walk(read: Read, base: int) -> tuple[tuple[int, int], ...]:
    chain: list[tuple[int, int]] = []
    address = base + 2
    for _ in range(MAX_MODELS):
        model, length = (await read(address, 2))[:2]
        if model == END:
            return tuple(chain)
        chain.append((model, length))
        address += 2 + length
        if address + 2 > 0x10000:
            break
    raise SunSpecError(f"SunSpec chain from {base} has no end marker within {MAX_MODELS} models")


def _check(regmap: RegisterMap, chain: Sequence[tuple[int, int]], base: int) -> None:
    lengths: dict[int, int] = {}
    for model, length in chain:
        lengths.setdefault(model, length)
    problems = []
    for model, needed in needed_lengths(regmap).items():
        if model not in lengths:
            problems.append(f"model {model} missing")
        elif lengths[model] < needed:
            problems.append(f"model {model} has {lengths[model]} registers, the map needs {needed}")
    if problems:
        models = ", ".join(f"{m} ({length})" for m, length in chain)
        raise SunSpecError(f"not a {regmap.name} (map {regmap.family}): SunSpec at {base} with models "
                           f"{models or 'none'}: " + "; ".join(problems))
