"""Hand-made communities and ticks for the matching tests."""

from __future__ import annotations

from cloud_sync.community.model import Member, Order, Position, Role, Tick, TickPrices

START = 1_767_225_600  # 2026-01-01T00:00Z, a multiple of 900
#: feed-in 8 ct, import 32 ct, fee 1 ct: the band is 8 … 31 ct/kWh, its midpoint 19.5 ct.
PRICES = TickPrices(feed_in=80_000, grid_import=320_000, fee=10_000)
MID = 195_000


def seller(member_id: str, inverter_w: int = 40_000, export_limit_w: int | None = None) -> Member:
    return Member(member_id, Role.PROSUMER, pv_wp=10_000, battery_wh=10_000, inverter_w=inverter_w,
                  export_limit_w=export_limit_w)


def buyer(member_id: str) -> Member:
    return Member(member_id, Role.CONSUMER)


def sells(member_id: str, wh: int, ask: Order | None = None) -> Position:
    return Position(member_id, import_wh=0, export_wh=wh, ask=ask)


def buys(member_id: str, wh: int, bid: Order | None = None) -> Position:
    return Position(member_id, import_wh=wh, export_wh=0, bid=bid)


def tick(*positions: Position, prices: TickPrices = PRICES, fixed_price: int | None = None) -> Tick:
    return Tick(START, prices, positions, fixed_price=fixed_price)
