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
generated here for the layout in use. A map may hold more than one SunSpec device behind the
same link (Fronius GEN24: the inverter at unit 1, its grid meter as a device of its own at unit
200), each with its own chain; each is located and checked on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence

from device.modbus.mapmodel import MAIN, IdentityCheck, RegisterMap, SunSpecLayout
from device.modbus.requests import ExceptionReply, RequestTimeout

MARKER = "SunS"
END = 0xFFFF
MAX_MODELS = 64  # no device chains more; a chain without an end marker is refused past this
IDENTITY_PREFIX = "sunspec_"

Read = Callable[[str, int, int], Awaitable[Sequence[int]]]  # (device, address, count) -> words


class SunSpecError(ValueError):
    """The device is no SunSpec device with the map's models; the text says what was found."""


def needed_lengths(regmap: RegisterMap, device: str = MAIN) -> dict[int, int]:
    """The least length L of each model of ``device``'s chain that holds every point the map
    reads or writes there."""
    layout = regmap.sunspec.get(device)
    needed = {model: 0 for model, _ in layout.chain} if layout else {}
    for reg in regmap.registers.values():
        if reg.model is not None and reg.device == device:
            needed[reg.model] = max(needed.get(reg.model, 0), reg.model_offset + reg.size - 2)
    return needed


def identity_checks(layout: SunSpecLayout, models: Sequence[int]) -> tuple[IdentityCheck, ...]:
    """The marker, the header (ID, L) of each of ``models`` and the end marker, where ``layout``
    puts them: what proves the device is the SunSpec device the map was placed on."""
    starts = dict(layout.starts())
    lengths = dict(layout.chain)
    prefix = IDENTITY_PREFIX + (f"{layout.device}_" if layout.device != MAIN else "")
    device = layout.device
    checks = [IdentityCheck(f"{prefix}marker", "holding", layout.base, 2, prefixes=(MARKER,), device=device)]
    for model in models:
        code = (model << 16) | lengths[model]
        checks.append(IdentityCheck(f"{prefix}model_{model}", "holding", starts[model], 2,
                                    values={code: f"model {model}, {lengths[model]} registers"}, device=device))
    checks.append(IdentityCheck(f"{prefix}end", "holding", layout.end, 2,
                                values={END << 16: "end of the SunSpec models"}, device=device))
    return tuple(checks)


def rebase(regmap: RegisterMap, layout: SunSpecLayout) -> RegisterMap:
    """``regmap`` with every SunSpec point of ``layout.device`` (registers, and identity words
    named by model: SMA's manufacturer in model 1) at its address in ``layout`` and the identity
    checks for it. ``layout`` must hold every model of the map's chain for that
    device (see :func:`locate`)."""
    device = layout.device
    starts = layout.starts()
    registers = {
        name: dataclasses.replace(reg, address=starts[reg.model] + reg.model_offset)
        if reg.model is not None and reg.device == device else reg
        for name, reg in regmap.registers.items()
    }
    models = [model for model, _ in regmap.sunspec[device].chain]
    ours = [i for i, c in enumerate(regmap.identity) if c.device == device and c.name.startswith(IDENTITY_PREFIX)]
    at = ours[0] if ours else len(regmap.identity)  # in place of the checks of the layout before
    others = [dataclasses.replace(c, address=starts[c.model] + c.model_offset)
              if c.model is not None and c.device == device else c
              for i, c in enumerate(regmap.identity) if i not in ours]
    identity = (*others[:at], *identity_checks(layout, models), *others[at:])
    return dataclasses.replace(regmap, registers=registers, sunspec={**regmap.sunspec, device: layout},
                               identity=identity)


async def locate(regmap: RegisterMap, read: Read) -> RegisterMap:
    """Find each device's marker at the map's base addresses, walk its model chain and rebase
    the map onto it; :class:`SunSpecError` naming what was found if a model is missing or too
    short, or a device answers no marker."""
    for layout in list(regmap.sunspec.values()):
        if not layout.located:
            regmap = await _locate_device(regmap, layout, read)
    return regmap


async def _locate_device(regmap: RegisterMap, layout: SunSpecLayout, read: Read) -> RegisterMap:
    device = layout.device
    where = "" if device == MAIN else f"{regmap.protocol.device_label(device)}: "
    found = []
    for base in layout.bases:
        try:
            words = await read(device, base, 2)
        except ExceptionReply as exc:
            found.append(f"{base}: exception {exc.code}")
            continue
        except RequestTimeout:
            if device == MAIN:  # silence at the map's own unit id: nothing there (not a refusal)
                raise
            raise SunSpecError(f"not a {regmap.name} (map {regmap.family}): {where}no reply") from None
        text = b"".join(w.to_bytes(2, "big") for w in words).decode("ascii", "replace")
        if text != MARKER:
            found.append(f"{base}: {text!r}")
            continue
        chain = await _walk(read, device, base)
        _check(regmap, device, chain, base, where)
        return rebase(regmap, SunSpecLayout(layout.bases, chain, base, located=True, device=device))
    raise SunSpecError(f"not a SunSpec device (map {regmap.family}): {where}no {MARKER!r} marker at "
                       + ", ".join(found))


async def _walk(read: Read, device: str, base: int) -> tuple[tuple[int, int], ...]:
    chain: list[tuple[int, int]] = []
    address = base + 2
    for _ in range(MAX_MODELS):
        model, length = (await read(device, address, 2))[:2]
        if model == END:
            return tuple(chain)
        chain.append((model, length))
        address += 2 + length
        if address + 2 > 0x10000:
            break
    raise SunSpecError(f"SunSpec chain from {base} has no end marker within {MAX_MODELS} models")


def _check(regmap: RegisterMap, device: str, chain: Sequence[tuple[int, int]], base: int, where: str) -> None:
    lengths: dict[int, int] = {}
    for model, length in chain:
        lengths.setdefault(model, length)
    problems = []
    for model, needed in needed_lengths(regmap, device).items():
        if model not in lengths:
            problems.append(f"model {model} missing")
        elif lengths[model] < needed:
            problems.append(f"model {model} has {lengths[model]} registers, the map needs {needed}")
    if problems:
        models = ", ".join(f"{m} ({length})" for m, length in chain)
        raise SunSpecError(f"not a {regmap.name} (map {regmap.family}): {where}SunSpec at {base} with models "
                           f"{models or 'none'}: " + "; ".join(problems))
