"""What a tick is made of: members and their systems, prices, standing orders and positions.

Units: energy in whole Wh, power in whole W, prices in integer µEUR/kWh (micro-euro per kWh;
0.30 EUR/kWh = 300,000), money in integer nEUR (nano-euro; Wh × µEUR/kWh = nEUR, so every amount
is exact). Every constructor checks its values and names field, value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

#: The matching rules (``cloud_sync.community.rules`` has one module each).
RULE_NAMES = ("greedy", "proportional", "price_priority", "uniform_price")
#: No trade below this (a smaller remainder stays with the grid).
MIN_TRADE_WH = 10
#: The quarter-hour tick.
TICK_S = 900
#: Plausibility bounds: one metering location's quarter-hour energy, a system's power, a price.
MAX_TICK_WH = 10_000_000
MAX_POWER_W = 100_000_000
MAX_PRICE = 100_000_000  # 100 EUR/kWh
MAX_ID_LEN = 64


class CommunityError(ValueError):
    """Bad input to the community market: the message names field, value and what is allowed."""


def _check_int(value: object, low: int, high: int, what: str, *parts: object) -> int:
    """``value`` if an int in ``[low, high]``; the message is ``what.format(*parts)`` (built only
    for a refusal: ticks check 10,000 positions)."""
    if type(value) is not int or not low <= value <= high:  # bool (an int subclass) is refused too
        raise CommunityError(f"{what.format(*parts)}: {value!r} is not allowed (an integer from {low} to {high})")
    return value


def check_id(what: str, value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LEN or not value.isprintable() or value != value.strip():
        raise CommunityError(
            f"{what}: {value!r} is not allowed (1 to {MAX_ID_LEN} printable characters, no surrounding spaces)"
        )
    return value


class Role(StrEnum):
    """A prosumer may sell and buy; a consumer only buys (its surplus, if any, goes to the grid)."""

    PROSUMER = "prosumer"
    CONSUMER = "consumer"


_ROLES = {r.value: r for r in Role}


def parse_role(value: object) -> Role:
    role = _ROLES.get(value) if isinstance(value, str) else None
    if role is not None:
        return role
    raise CommunityError(f"role: {value!r} is not allowed (one of {', '.join(r.value for r in Role)})")


@dataclass(frozen=True)
class Member:
    """A metering location in the community, with its system (all optional for a consumer).

    ``export_limit_w`` is the grid operator's feed-in limit (None: only the inverter limits);
    a seller never sells more than ``min(inverter_w, export_limit_w) × tick length`` in a tick.
    """

    id: str
    role: Role = Role.CONSUMER
    pv_wp: int = 0
    battery_wh: int = 0
    inverter_w: int = 0
    export_limit_w: int | None = None

    def __post_init__(self) -> None:
        check_id("member id", self.id)
        object.__setattr__(self, "role", parse_role(self.role))
        for name in ("pv_wp", "battery_wh", "inverter_w"):
            _check_int(getattr(self, name), 0, MAX_POWER_W, "member {}: {}", self.id, name)
        if self.export_limit_w is not None:
            _check_int(self.export_limit_w, 0, MAX_POWER_W, "member {}: export_limit_w", self.id)

    def sell_cap_wh(self, tick_s: int = TICK_S) -> int:
        """The most this member may sell in one tick (0 for a consumer)."""
        if self.role is not Role.PROSUMER:
            return 0
        limit_w = self.inverter_w if self.export_limit_w is None else min(self.inverter_w, self.export_limit_w)
        return limit_w * tick_s // 3600


@dataclass(frozen=True)
class TickPrices:
    """The grid's prices for one tick and the platform's fee, all µEUR/kWh.

    The community price band is ``[feed_in, grid_import - fee]``: a seller never gets less than
    the feed-in, a buyer never pays (price + fee) more than the grid import. An empty band
    (fee ≥ import − feed-in) means no trade in that tick.
    """

    feed_in: int
    grid_import: int
    fee: int = 0

    def __post_init__(self) -> None:
        _check_int(self.feed_in, -MAX_PRICE, MAX_PRICE, "prices: feed_in")
        _check_int(self.grid_import, -MAX_PRICE, MAX_PRICE, "prices: grid_import")
        _check_int(self.fee, 0, MAX_PRICE, "prices: fee")

    @property
    def low(self) -> int:
        return self.feed_in

    @property
    def high(self) -> int:
        return self.grid_import - self.fee

    def clamp(self, price: int) -> int:
        return max(self.low, min(self.high, price))

    def midpoint(self) -> int:
        return (self.low + self.high) // 2


@dataclass(frozen=True)
class Order:
    """A member's standing limit: the least it sells for (ask) or the most it pays (bid),
    µEUR/kWh, posted at ``posted_ms`` (epoch ms: earlier has priority at an equal price)."""

    limit: int
    posted_ms: int

    def __post_init__(self) -> None:
        _check_int(self.limit, -MAX_PRICE, MAX_PRICE, "order: limit")
        _check_int(self.posted_ms, 0, 2**53 - 1, "order: posted_ms")


@dataclass(frozen=True)
class Position:
    """One member's metered energy in one tick, and its standing orders (price rules only).

    The member's own import and export in the tick are netted first: the surplus is
    ``max(export - import, 0)``, the deficit ``max(import - export, 0)``.
    """

    member: str
    import_wh: int
    export_wh: int
    ask: Order | None = None
    bid: Order | None = None

    def __post_init__(self) -> None:
        check_id("position: member", self.member)
        _check_int(self.import_wh, 0, MAX_TICK_WH, "position {}: import_wh", self.member)
        _check_int(self.export_wh, 0, MAX_TICK_WH, "position {}: export_wh", self.member)

    @property
    def net_wh(self) -> int:
        return self.export_wh - self.import_wh


@dataclass(frozen=True)
class Tick:
    """One quarter-hour of one community: its start (epoch s, a multiple of the length), prices
    and the members' positions, at most one per member."""

    start: int
    prices: TickPrices
    positions: tuple[Position, ...]
    length_s: int = TICK_S
    fixed_price: int | None = field(default=None)

    def __post_init__(self) -> None:
        _check_int(self.length_s, 60, 86_400, "tick: length_s")
        _check_int(self.start, 0, 2**40, "tick: start")
        if self.start % self.length_s:
            raise CommunityError(f"tick: start {self.start} is not allowed (a multiple of the length {self.length_s} s)")
        if self.fixed_price is not None:
            _check_int(self.fixed_price, -MAX_PRICE, MAX_PRICE, "tick: fixed_price")
        object.__setattr__(self, "positions", dedupe_positions(self.start, self.positions))


def dedupe_positions(start: int, positions: Iterable[Position]) -> tuple[Position, ...]:
    """One position per member: an identical duplicate (the same reading ingested twice) counts
    once; two different values for one member in one tick are refused (a correction is a new
    version of the tick, not a second position)."""
    seen: dict[str, Position] = {}
    for p in positions:
        known = seen.setdefault(p.member, p)
        if known != p:
            raise CommunityError(
                f"tick {start}: member {p.member} has two different positions ({known.import_wh}/{known.export_wh} Wh "
                f"and {p.import_wh}/{p.export_wh} Wh import/export); one position per member and tick is allowed"
            )
    return tuple(sorted(seen.values(), key=lambda p: p.member))


def members_by_id(members: Iterable[Member]) -> Mapping[str, Member]:
    out: dict[str, Member] = {}
    for m in members:
        if m.id in out:
            raise CommunityError(f"member id: {m.id!r} appears twice (each member once)")
        out[m.id] = m
    return out
