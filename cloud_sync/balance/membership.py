"""Who belongs to a balance group when: half-open intervals ``[start, end)`` of quarter-hours.

A metering location belongs to at most one group at any instant. Joins and leaves take effect at
a quarter-hour boundary. History is kept: a membership is never deleted or moved, only an open one
is ended (its ``end`` set once), and a change of group is an end plus a new join.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cloud_sync.balance.timegrid import SLOT_S, iso


class MembershipError(ValueError):
    """A membership that cannot be: overlapping another, ending before it starts, …"""


@dataclass(frozen=True)
class Membership:
    melo: str
    group: str
    start: int  # epoch s, first slot inside
    end: int | None = None  # epoch s, first slot outside; None: open

    def covers(self, ts: int) -> bool:
        return self.start <= ts and (self.end is None or ts < self.end)

    def overlaps(self, start: int, end: int | None) -> bool:
        return (end is None or self.start < end) and (self.end is None or start < self.end)

    def describe(self) -> str:
        until = "open-ended" if self.end is None else f"until {iso(self.end)}"
        return f"{self.melo} in group {self.group} from {iso(self.start)} {until}"


def check_boundaries(start: int, end: int | None) -> None:
    for name, ts in (("start", start), ("end", end)):
        if ts is not None and ts % SLOT_S:
            raise MembershipError(f"{name}: {ts} is not a quarter-hour boundary")
    if end is not None and end <= start:
        raise MembershipError(f"end: {iso(end)} is not after start {iso(start)}; a membership lasts at least "
                              "one quarter-hour")


def check_join(existing: Iterable[Membership], new: Membership) -> None:
    """Refuse ``new`` if it overlaps any membership of the same metering location."""
    check_boundaries(new.start, new.end)
    for old in existing:
        if old.melo == new.melo and old.overlaps(new.start, new.end):
            raise MembershipError(f"metering location {new.melo} would be in two groups at once: "
                                  f"{old.describe()}; end that first or join later")


def check_end(membership: Membership, end: int) -> None:
    """Refuse ending ``membership`` at ``end`` unless it is open and ``end`` is after its start."""
    if membership.end is not None:
        raise MembershipError(f"{membership.describe()} has already ended; history is not rewritten")
    check_boundaries(membership.start, end)


def member_slots(memberships: Iterable[Membership], group: str, start: int, end: int) -> dict[str, list[int]]:
    """Per metering location, the slots of ``[start, end)`` in which it belongs to ``group``."""
    out: dict[str, list[int]] = {}
    for m in memberships:
        if m.group != group or not m.overlaps(start, end):
            continue
        lo, hi = max(m.start, start), end if m.end is None else min(m.end, end)
        out.setdefault(m.melo, []).extend(range(lo, hi, SLOT_S))
    return {melo: sorted(ts) for melo, ts in out.items()}


def group_of(memberships: Mapping[str, Iterable[Membership]], melo: str, ts: int) -> str | None:
    """The group ``melo`` belongs to in the slot starting at ``ts``."""
    for m in memberships.get(melo, ()):
        if m.covers(ts):
            return m.group
    return None
