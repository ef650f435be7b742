"""Fault injection: how the simulated firmware misbehaves, changeable while it runs.

Each kind fires with a probability per request, or for the next N requests (``next``), which is
what deterministic tests use: ``sim.faults.arm("late", 1)``. On the command line a fault is
``KIND[:ARGS]`` with ARGS a probability or ``key=value`` pairs separated by commas, e.g.
``no_reply:0.05``, ``late:next=1,delay=1.5``, ``exception:p=0.1,code=6``, ``defective``.

What each kind does to a request:
- ``no_reply``: the request is lost; nothing is executed, nothing is sent.
- ``exception``: refused with exception ``code`` (default 4, device failure); nothing executed.
- ``corrupt_crc``: executed, but the reply's CRC is wrong (on Modbus TCP: a garbled PDU).
- ``late``: executed, the reply comes ``delay`` seconds later than it should (beyond the master's
  timeout, so that a careless master takes it for the answer to its next request).
- ``disconnect``: the connection drops (TCP closed; the serial port closed and reopened after
  ``down`` seconds), as when an adapter is unplugged.
- ``defective``: never answers anything, until switched off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KINDS = ("no_reply", "exception", "corrupt_crc", "late", "disconnect")
_OPTIONS = {"exception": {"code"}, "late": {"delay"}, "disconnect": {"down"}}


class FaultError(ValueError):
    """A fault specification is malformed; the message names it and what is allowed."""


@dataclass
class Faults:
    """Per-request fault probabilities (0..1), ``next`` budgets, and the faults' parameters."""

    no_reply: float = 0.0
    exception: float = 0.0
    corrupt_crc: float = 0.0
    late: float = 0.0
    disconnect: float = 0.0
    defective: bool = False
    exception_code: int = 4
    late_delay_s: float = 1.5
    disconnect_down_s: float = 0.5
    next: dict[str, int] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def arm(self, kind: str, count: int = 1) -> None:
        """Make the next ``count`` requests suffer ``kind``."""
        if kind not in KINDS:
            raise FaultError(f"fault {kind!r}: unknown; allowed: {', '.join(KINDS)}, defective")
        self.next[kind] = self.next.get(kind, 0) + count

    def fires(self, kind: str) -> bool:
        """Whether ``kind`` hits the current request (consumes one ``next`` budget if so)."""
        if self.next.get(kind, 0) > 0:
            self.next[kind] -= 1
            return True
        probability: float = getattr(self, kind)
        return probability > 0 and self._random.random() < probability

    def clear(self) -> None:
        """Back to healthy firmware."""
        for kind in KINDS:
            setattr(self, kind, 0.0)
        self.defective = False
        self.next.clear()


def parse_fault(spec: str, faults: Faults) -> None:
    """Apply one ``KIND[:ARGS]`` specification (see the module docstring) to ``faults``."""
    kind, _, args = spec.partition(":")
    if kind == "defective":
        if args:
            raise FaultError(f"fault {spec!r}: defective takes no arguments")
        faults.defective = True
        return
    if kind not in KINDS:
        raise FaultError(f"fault {spec!r}: unknown kind {kind!r}; allowed: {', '.join(KINDS)}, defective")
    allowed = {"p", "next"} | _OPTIONS.get(kind, set())
    fired = False
    for item in filter(None, args.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            key, value = "p", item
        if key not in allowed:
            raise FaultError(f"fault {spec!r}: unknown option {key!r}; allowed: {', '.join(sorted(allowed))}")
        try:
            number = float(value)
        except ValueError:
            raise FaultError(f"fault {spec!r}: {key}={value!r} is not a number") from None
        if key == "p":
            if not 0 <= number <= 1:
                raise FaultError(f"fault {spec!r}: probability {number} outside 0..1")
            setattr(faults, kind, number)
            fired = True
        elif key == "next":
            if number < 1 or number != int(number):
                raise FaultError(f"fault {spec!r}: next={value} must be a whole number >= 1")
            faults.arm(kind, int(number))
            fired = True
        elif key == "code":
            if number not in (1, 2, 3, 4, 5, 6, 8, 10, 11):
                raise FaultError(f"fault {spec!r}: code={value} is not a Modbus exception code")
            faults.exception_code = int(number)
        elif number < 0:
            raise FaultError(f"fault {spec!r}: {key}={value} must be >= 0")
        elif key == "delay":
            faults.late_delay_s = number
        else:
            faults.disconnect_down_s = number
    if not fired:
        setattr(faults, kind, 1.0)  # a bare kind: every request
