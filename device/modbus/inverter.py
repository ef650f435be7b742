"""The inverter as the bridge sees it: telemetry snapshots, register access, semantic controls.

Everything goes through the :class:`~device.modbus.worker.ModbusWorker` queue with the right
priority: telemetry blocks at TELEMETRY, installer reads at ONDEMAND, every write and its
read-back at CONTROL. Commands are validated against the map and the installation's limits
before anything is queued, and each control is verified by reading back every register it
wrote, so ``applied_at`` means the inverter holds the values, not merely that it acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from common.numbers import finite_float
from device.clock import SYSTEM_CLOCK, Clock
from device.config import InverterSettings
from device.modbus import codec, sunspec
from device.modbus.blocks import Block, plan_blocks
from device.modbus.mapmodel import Register, RegisterAccessError, RegisterMap
from device.modbus.worker import ModbusWorker, Priority, ReadRequest, RequestTimeout, WriteRequest


class CommandError(ValueError):
    """A command or register access refused before anything was queued (the text says why)."""


class IdentityError(CommandError):
    """The inverter is not of the map's family (its identity words say otherwise): nothing is
    written to it. The text names what was found and what the map expects."""


class VerificationError(RuntimeError):
    """The inverter acknowledged the writes but reads back other values."""


@dataclass(frozen=True)
class Limits:
    """The installation's limits (cabling, fuse, battery warranty), stricter than the map's."""

    max_charge_w: float
    max_discharge_w: float

    @classmethod
    def from_settings(cls, settings: InverterSettings) -> Limits:
        return cls(settings.max_charge_w, settings.max_discharge_w)


@dataclass(frozen=True)
class Snapshot:
    """One telemetry cycle: epoch seconds, role values and register values (None = not read)."""

    ts: float
    roles: Mapping[str, float | None]
    registers: Mapping[str, float | None]


class Inverter:
    """One inverter behind a worker; ``limits`` cap the power a command may ask for."""

    def __init__(
        self,
        regmap: RegisterMap,
        worker: ModbusWorker,
        limits: Limits,
        *,
        command_timeout_s: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.regmap = regmap
        self.worker = worker
        self.limits = limits
        self.command_timeout_s = command_timeout_s
        self.clock = clock  # stamps readings and applied commands (epoch seconds)
        self.telemetry_blocks: list[Block] = plan_blocks(regmap)
        self._identified = not regmap.identity
        self.identity_error: str | None = None  # why the last identity check refused the inverter

    # --- identity --------------------------------------------------------------------------

    @property
    def identified(self) -> bool:
        """The identity words were read and match (or the map declares none)."""
        return self._identified

    async def identify(self, priority: Priority = Priority.CONTROL) -> None:
        """Read the map's identity words; :class:`IdentityError` if the inverter is another family.

        Every write waits for this once (a matching inverter is remembered, a mismatch asked
        again at the next write: the installer may swap the map or the inverter).
        """
        if self._identified:
            return
        deadline = self.worker.deadline_in(self.command_timeout_s)
        await self._locate(priority, deadline)
        wrong = []
        for check in self.regmap.identity:
            unit = self.regmap.protocol.request_unit(check.device)
            try:
                words = await self.worker.submit(
                    ReadRequest(check.table, check.address, check.words, unit), priority, deadline)  # type: ignore[arg-type]
            except RequestTimeout:
                if unit is None:  # silence at the map's own unit id: nothing there (not a refusal)
                    raise
                wrong.append(f"{check.name} ({self.regmap.protocol.device_label(check.device)}): no reply")
                continue
            found = check.found(words)
            if not check.matches(found):
                at = "" if unit is None else f" at unit {unit}"
                wrong.append(f"{check.name} ({check.table} {check.address}{at}) reads {check.describe(found)}, "
                             f"expected {check.expected()}")
        if wrong:
            self.identity_error = (f"not a {self.regmap.name} (map {self.regmap.family}): " + "; ".join(wrong)
                                   + "; nothing written")
            raise IdentityError(self.identity_error)
        self.identity_error = None
        self._identified = True

    async def _locate(self, priority: Priority, deadline: float | None) -> None:
        """A SunSpec map: find each device's models and place the map's points on them, once
        (:mod:`device.modbus.sunspec`); :class:`IdentityError` if one has not the map's models."""
        if all(layout.located for layout in self.regmap.sunspec.values()):
            return

        async def read(device: str, address: int, count: int) -> tuple[int, ...]:
            unit = self.regmap.protocol.request_unit(device)
            return await self.worker.submit(ReadRequest("holding", address, count, unit), priority, deadline)

        try:
            self.regmap = await sunspec.locate(self.regmap, read)
        except sunspec.SunSpecError as exc:
            self.identity_error = f"{exc}; nothing written"
            raise IdentityError(self.identity_error) from None
        self.telemetry_blocks = plan_blocks(self.regmap)

    # --- reading ---------------------------------------------------------------------------

    async def read_telemetry(self, deadline: float | None = None) -> Snapshot:
        """Read every telemetry block; a failed block leaves its registers None, never stale.

        All blocks are queued at once, so they go out back to back (no idle line between them),
        while a control write still overtakes them. ``deadline`` is on the worker's clock. A
        SunSpec map finds the device's models first.
        """
        await self._locate(Priority.TELEMETRY, deadline)
        results = await asyncio.gather(
            *(self._read_block(b, Priority.TELEMETRY, deadline) for b in self.telemetry_blocks),
            return_exceptions=True,
        )
        values: dict[str, float | None] = {}
        for block, result in zip(self.telemetry_blocks, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation and the like are not a failed block
            for reg in block.registers:
                values[reg.name] = None if isinstance(result, Exception) else result.get(reg.name)
        return Snapshot(self.clock.time(), codec.semantic(self.regmap, values), values)

    async def read_registers(self, names: Sequence[str]) -> dict[str, float | None]:
        """Read named registers now (installer, verification); raises if any block fails."""
        registers = [self._register(name, "read") for name in names]
        await self._locate(Priority.ONDEMAND, None)  # a SunSpec map knows its addresses only then
        return await self._read([self.regmap.registers[reg.name] for reg in registers], Priority.ONDEMAND)

    async def _read(self, registers: Sequence[Register], priority: Priority) -> dict[str, float | None]:
        blocks = plan_blocks(self.regmap, registers)
        values: dict[str, float | None] = {}
        deadline = self.worker.deadline_in(self.command_timeout_s)
        for block_values in await asyncio.gather(*(self._read_block(b, priority, deadline) for b in blocks)):
            values.update(block_values)
        return {reg.name: values.get(reg.name) for reg in registers}

    async def _read_block(self, block: Block, priority: Priority, deadline: float | None) -> dict[str, float | None]:
        unit = self.regmap.protocol.request_unit(block.device)
        words = await self.worker.submit(
            ReadRequest(block.table, block.start, block.count, unit), priority, deadline  # type: ignore[arg-type]
        )
        return codec.decode_block(block.registers, block.start, words)

    # --- writing ---------------------------------------------------------------------------

    async def write_register(self, name: str, value: float) -> datetime:
        """Write one register (installer), verified by read-back; returns when it was applied."""
        self._register(name, "write")
        await self.identify()  # a SunSpec map knows its addresses only then
        reg = self.regmap.registers[name]
        if reg.scale_factor is not None:  # encoded with the inverter's own scale factor
            factor = self.regmap.registers[reg.scale_factor]
            exponent = (await self._read([factor], Priority.CONTROL))[factor.name]
            if exponent is None:
                raise CommandError(f"{factor.name} reads None: cannot encode {reg.name}; nothing written")
            reg = reg.scaled(exponent)
        return await self._write_verified([(reg, self._encode(reg, value))])

    def validate(self, mode: str, params: Mapping[str, Any]) -> None:
        """Refuse a control command before anything is queued; the message names what is wrong."""
        control = self.regmap.controls.get(mode)
        if control is None:
            raise CommandError(f"unknown mode {mode!r}; allowed: {', '.join(self.regmap.controls)}")
        missing = [p for p in control.params if p not in params]
        extra = [p for p in params if p not in control.params]
        if missing:
            raise CommandError(f"{mode}: missing parameter {missing[0]!r}")
        if extra:
            allowed = ", ".join(control.params) or "none"
            raise CommandError(f"{mode}: unknown parameter {extra[0]!r}; allowed: {allowed}")
        for pname, spec in control.params.items():
            value = params[pname]
            if finite_float(value) is None:
                raise CommandError(f"{mode}: {pname} must be a number, got {value!r}")
            if not spec.min <= value <= spec.max:
                raise CommandError(
                    f"{mode}: {pname} {value} {spec.unit} outside the inverter's range {spec.min}..{spec.max}"
                )
            limit = self._installation_limit(mode, pname)
            if limit is not None and value > limit[1]:
                raise CommandError(f"{mode}: {pname} {value} {spec.unit} above the installation limit "
                                   f"{limit[0]} = {limit[1]}")
        self._planned_writes(mode, params)  # the register ranges must hold the resolved values

    def _installation_limit(self, mode: str, pname: str) -> tuple[str, float] | None:
        if pname != "power_w":
            return None
        if mode == "charge":
            return "max_charge_w", self.limits.max_charge_w
        if mode == "discharge":
            return "max_discharge_w", self.limits.max_discharge_w
        return None

    async def apply(self, mode: str, **params: Any) -> datetime:
        """Put the inverter in ``mode``: the control's writes, then read-back of each register.

        Returns when the writes were acknowledged (UTC); raises :class:`CommandError` before
        anything is queued, a worker error if a write failed, :class:`VerificationError` if
        the inverter reads back something else.
        """
        self.validate(mode, params)
        control = self.regmap.controls[mode]
        readings: dict[str, float | None] = {}
        await self.identify()  # before reading settings whose addresses only this family has
        if control.inputs:
            readings = await self._read([self.regmap.registers[n] for n in control.inputs], Priority.CONTROL)
        for need in control.requires:
            found = readings[need.register]
            if found not in need.values:
                label = self.regmap.registers[need.register].enum.get(int(found)) if found is not None else None
                shown = "is not read" if found is None else f"reads {found:g}" + (f" ({label})" if label else "")
                raise CommandError(f"{mode}: {need.register} {shown}: {need.reason}; nothing written")
        return await self._write_verified(self._planned_writes(mode, params, readings))

    def _planned_writes(self, mode: str, params: Mapping[str, Any],
                        readings: Mapping[str, float | None] | None = None) -> list[tuple[Register, list[int]]]:
        """The control's writes as words; without ``readings`` only those that need none."""
        control = self.regmap.controls[mode]
        writes = []
        for spec in control.writes:
            if readings is None and spec.inputs:
                continue
            reg = self.regmap.registers[spec.register]
            if readings is not None:
                for name in spec.inputs:
                    value = readings.get(name)
                    if value is None or (name == spec.divide_by and value <= 0):
                        raise CommandError(f"{mode}: {name} reads {value}: cannot compute {reg.name}; "
                                           "nothing written")
                if spec.scale_factor is not None:  # encoded with the inverter's own scale factor
                    reg = reg.scaled(readings[spec.scale_factor] or 0.0)
            writes.append((reg, self._encode(reg, spec.resolve(params, readings), f"{mode}: ")))
        return writes

    async def _write_verified(self, writes: Sequence[tuple[Register, list[int]]]) -> datetime:
        await self.identify()
        deadline = self.worker.deadline_in(self.command_timeout_s)
        for device, address, words in coalesce(writes):
            unit = self.regmap.protocol.request_unit(device)
            await self.worker.submit(WriteRequest(address, tuple(words), unit), Priority.CONTROL, deadline)
        applied_at = datetime.fromtimestamp(self.clock.time(), UTC)
        wanted = {reg.name: (reg, words) for reg, words in writes}  # the last write of a register wins
        readable = [reg for reg, _ in wanted.values() if reg.readable]
        if readable:
            got = await self._read(readable, Priority.CONTROL)
            wrong = [
                f"{reg.name} reads {got[reg.name]}, wrote {codec.decode(reg, words)}"
                for reg, words in wanted.values()
                if reg.readable and got[reg.name] != codec.decode(reg, words)
            ]
            if wrong:
                raise VerificationError("read-back mismatch: " + "; ".join(wrong))
        return applied_at

    def _register(self, name: str, access: Literal["read", "write"]) -> Register:
        try:
            return self.regmap.register(name, access)
        except RegisterAccessError as exc:
            raise CommandError(str(exc)) from None

    @staticmethod
    def _encode(reg: Register, value: float, context: str = "") -> list[int]:
        try:
            return codec.encode_write(reg, value)
        except codec.EncodeError as exc:
            raise CommandError(f"{context}{exc}") from None


def coalesce(writes: Sequence[tuple[Register, list[int]]]) -> list[tuple[str, int, list[int]]]:
    """Merge writes to adjacent registers of one device into single FC16 writes, keeping the
    map's order: (device, address, words) per write.

    Only a write that continues the previous one (same device, its address is where the run
    ends) joins it: reordering could change what the firmware does between writes (e.g. enabling
    time-of-use before its program is set).
    """
    runs: list[tuple[str, int, list[int]]] = []
    for reg, words in writes:
        if runs and runs[-1][0] == reg.device and runs[-1][1] + len(runs[-1][2]) == reg.address \
                and len(runs[-1][2]) + len(words) <= 123:
            runs[-1][2].extend(words)
        else:
            runs.append((reg.device, reg.address, list(words)))
    return runs
