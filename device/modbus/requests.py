"""What callers hand the Modbus worker, and how it fails.

Requests are plain values that know their function code and their size on the wire (the
worker needs both: to check the reply and to time the line). Every failure is a
:class:`ModbusError` subclass whose ``kind`` is the key it is counted under in ``health``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Literal


class Priority(IntEnum):
    CONTROL = 0
    ONDEMAND = 1
    TELEMETRY = 2


@dataclass(frozen=True)
class ReadRequest:
    """Read ``count`` registers from ``address`` (FC3 holding / FC4 input); result: the words.
    ``unit``: another device's unit id behind the same link (``None``: the worker's own)."""

    table: Literal["holding", "input"]
    address: int
    count: int
    unit: int | None = None

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        if self.table not in ("holding", "input"):
            raise ValueError(f"table: got {self.table!r}; allowed: holding, input")
        if not 1 <= self.count <= 125 or not 0 <= self.address <= 0xFFFF - self.count + 1:
            raise ValueError(f"read {self.address}+{self.count}: count 1..125 within 0..65535")

    @property
    def function_code(self) -> int:
        return 3 if self.table == "holding" else 4

    @property
    def wire_bytes(self) -> tuple[int, int]:
        """RTU bytes of the request and of its reply."""
        return 8, 5 + 2 * self.count


@dataclass(frozen=True)
class WriteRequest:
    """Write ``values`` to holding registers from ``address`` (FC16); result: None.
    ``unit`` as for :class:`ReadRequest`."""

    address: int
    values: tuple[int, ...]
    unit: int | None = None

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        if not 1 <= len(self.values) <= 123 or not 0 <= self.address <= 0xFFFF - len(self.values) + 1:
            raise ValueError(f"write {self.address}+{len(self.values)}: 1..123 registers within 0..65535")
        if any(not 0 <= v <= 0xFFFF for v in self.values):
            raise ValueError(f"write {self.address}: values must be 16-bit words, got {self.values}")

    function_code: ClassVar[int] = 16

    @property
    def wire_bytes(self) -> tuple[int, int]:
        return 9 + 2 * len(self.values), 8


Request = ReadRequest | WriteRequest


def _check_unit(unit: int | None) -> None:
    if unit is not None and (isinstance(unit, bool) or not isinstance(unit, int) or not 1 <= unit <= 247):
        raise ValueError(f"unit: got {unit!r}; allowed: 1..247 or None (the worker's own unit id)")


class ModbusError(Exception):
    """A request failed; ``kind`` is the key it is counted under in ``stats()["errors"]``."""

    kind: ClassVar[str] = "error"


class RequestTimeout(ModbusError):
    kind = "timeout"


class CorruptReply(ModbusError):
    """Bytes arrived but no valid frame (bad CRC, truncated, garbage)."""

    kind = "corrupt"


class StaleReply(ModbusError):
    """A reply that does not answer the request (wrong function code, count or echo)."""

    kind = "stale"


class ExceptionReply(ModbusError):
    """The inverter answered with a Modbus exception; final, never retried."""

    kind = "exception"
    NAMES: ClassVar[dict[int, str]] = {
        1: "illegal function", 2: "illegal data address", 3: "illegal data value",
        4: "server device failure", 5: "acknowledge", 6: "server device busy",
    }

    def __init__(self, request: Request, code: int) -> None:
        self.code = code
        super().__init__(f"{describe(request)}: inverter replied exception {code} "
                         f"({self.NAMES.get(code, 'unknown')})")


class LinkDown(ModbusError):
    kind = "disconnected"


class InverterDefective(ModbusError):
    kind = "defective"


class DeadlineExpired(ModbusError):
    kind = "deadline"


class WorkerStopped(ModbusError):
    kind = "stopped"


class QueueFull(ModbusError):
    """Too many requests of this priority are already waiting; refused without queueing."""

    kind = "queue_full"


def describe(request: Request) -> str:
    at = "" if request.unit is None else f" at unit {request.unit}"
    if isinstance(request, ReadRequest):
        return f"read {request.table} {request.address}+{request.count}{at}"
    return f"write holding {request.address}+{len(request.values)}{at}"
