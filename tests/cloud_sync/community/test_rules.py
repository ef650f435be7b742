"""Each matching rule on hand-made ticks whose answers are worked out by hand."""

from __future__ import annotations

import random

import pytest

from cloud_sync.community.model import CommunityError, Member, Order, Position, Role, TickPrices, members_by_id
from cloud_sync.community.rules import RULES
from cloud_sync.community.settle import TickResult, run_tick
from tests.cloud_sync.community.market import MID, START, buyer, buys, seller, sells, tick

ALL = sorted(RULES)
COMMUNITY = members_by_id([seller("s1"), seller("s2"), seller("s3", inverter_w=4_000), buyer("b1"), buyer("b2"),
                           buyer("b3"), Member("c1", Role.CONSUMER)])


def trades(result: TickResult) -> list[tuple[str, str, int, int]]:
    """(seller, buyer, Wh, price) per trade, in sequence."""
    return [(s, b, int(w), int(p)) for _, _, s, b, w, p in (line.split(",") for line in result.lines())]


@pytest.mark.parametrize("rule", ALL)
def test_zero_supply_trades_nothing_and_the_grid_serves_everyone(rule: str) -> None:
    result = run_tick(tick(buys("b1", 400), buys("b2", 300)), COMMUNITY, rule)
    assert trades(result) == []
    assert result.balances.grid_import_wh.tolist() == [400, 300]
    assert result.balances.net.tolist() == [0, 0]


@pytest.mark.parametrize("rule", ALL)
def test_zero_demand_trades_nothing_and_the_surplus_goes_to_the_grid(rule: str) -> None:
    result = run_tick(tick(sells("s1", 400), sells("s2", 300)), COMMUNITY, rule)
    assert trades(result) == []
    assert result.balances.grid_export_wh.tolist() == [400, 300]


@pytest.mark.parametrize("rule", ALL)
def test_one_seller_serves_many_buyers_in_full(rule: str) -> None:
    result = run_tick(tick(sells("s1", 1_000), buys("b1", 300), buys("b2", 200), buys("b3", 100)), COMMUNITY, rule)
    assert sorted(trades(result)) == [("s1", "b1", 300, MID), ("s1", "b2", 200, MID), ("s1", "b3", 100, MID)]
    assert result.balances.grid_export_wh.tolist() == [0, 0, 0, 400]


def test_greedy_largest_to_largest_with_a_partial_fill() -> None:
    result = run_tick(tick(sells("s1", 400), sells("s2", 1_000), buys("b1", 600), buys("b2", 700)), COMMUNITY, "greedy")
    assert trades(result) == [("s2", "b2", 700, MID), ("s2", "b1", 300, MID), ("s1", "b1", 300, MID)]
    assert result.balances.grid_export_wh.tolist() == [0, 0, 100, 0]


def test_proportional_shares_the_short_side_by_largest_remainder() -> None:
    # 1,000 Wh for 1,300 Wh of deficits: 538.46 and 461.54 Wh, the leftover Wh to the larger remainder.
    result = run_tick(tick(sells("s1", 1_000), buys("b1", 700), buys("b2", 600)), COMMUNITY, "proportional")
    assert trades(result) == [("s1", "b1", 538, MID), ("s1", "b2", 462, MID)]
    # Two sellers, supply long: each sells 600/1500 of what it has.
    result = run_tick(tick(sells("s1", 500), sells("s2", 1_000), buys("b1", 600)), COMMUNITY, "proportional")
    assert trades(result) == [("s1", "b1", 200, MID), ("s2", "b1", 400, MID)]


def test_price_priority_by_price_then_time_at_the_resting_orders_price() -> None:
    positions = (
        sells("s1", 500, Order(100_000, posted_ms=2_000)),
        sells("s2", 500, Order(150_000, posted_ms=1_000)),
        buys("b1", 600, Order(300_000, posted_ms=3_000)),
        buys("b2", 600, Order(120_000, posted_ms=1_000)),  # below s2's ask: no trade
    )
    result = run_tick(tick(*positions), COMMUNITY, "price_priority")
    assert trades(result) == [("s1", "b1", 500, 100_000), ("s2", "b1", 100, 150_000)]
    uniform = run_tick(tick(*positions), COMMUNITY, "uniform_price")
    # Marginal pair: s2's ask 15 ct, b1's bid 30 ct: one price of 22.5 ct for every trade.
    assert trades(uniform) == [("s1", "b1", 500, 225_000), ("s2", "b1", 100, 225_000)]


def test_price_priority_time_breaks_an_equal_price_and_a_later_bid_takes_the_ask() -> None:
    positions = (
        sells("s1", 300, Order(120_000, posted_ms=5_000)),
        sells("s2", 300, Order(120_000, posted_ms=4_000)),
        buys("b1", 400, Order(200_000, posted_ms=6_000)),
    )
    result = run_tick(tick(*positions), COMMUNITY, "price_priority")
    assert trades(result) == [("s2", "b1", 300, 120_000), ("s1", "b1", 100, 120_000)]


@pytest.mark.parametrize("rule", ALL)
def test_exact_ties_go_by_member_id_whatever_the_arrival_order(rule: str) -> None:
    positions = [sells("s2", 500), sells("s1", 500), buys("b2", 400), buys("b1", 400), buys("b3", 400)]
    first = run_tick(tick(*positions), COMMUNITY, rule)
    assert trades(first)[0][:2] == ("s1", "b1")
    for seed in range(5):
        random.Random(seed).shuffle(positions)
        assert run_tick(tick(*positions), COMMUNITY, rule).lines() == first.lines()


@pytest.mark.parametrize("rule", ALL)
def test_export_limit_times_tick_length_binds(rule: str) -> None:
    # s3: 4 kW inverter → at most 1,000 Wh in a quarter-hour, whatever its meter says.
    result = run_tick(tick(sells("s3", 2_500), buys("b1", 3_000)), COMMUNITY, rule)
    assert [t[2] for t in trades(result)] == [1_000]
    assert result.balances.grid_export_wh.tolist() == [0, 1_500]
    assert result.balances.grid_import_wh.tolist() == [2_000, 0]
    limited = members_by_id([seller("s1", inverter_w=10_000, export_limit_w=2_000), buyer("b1")])
    assert trades(run_tick(tick(sells("s1", 2_500), buys("b1", 3_000)), limited, rule))[0][2] == 500


@pytest.mark.parametrize("rule", ALL)
def test_remainders_under_the_minimum_trade_stay_with_the_grid(rule: str) -> None:
    result = run_tick(tick(sells("s1", 505), sells("s2", 9), buys("b1", 500), buys("b2", 100)), COMMUNITY, rule)
    if rule == "proportional":  # 505 Wh for 600 Wh of deficits: 420.8 and 84.2 Wh
        assert trades(result) == [("s1", "b1", 421, MID), ("s1", "b2", 84, MID)]
        assert result.balances.grid_export_wh.tolist()[-2:] == [0, 9]
    else:  # b1 takes 500 Wh; the 5 Wh left is under the minimum; s2's 9 Wh never trade
        assert trades(result) == [("s1", "b1", 500, MID)]
        assert result.balances.grid_export_wh.tolist()[-2:] == [5, 9]


@pytest.mark.parametrize("rule", ALL)
def test_a_consumer_with_a_surplus_does_not_sell(rule: str) -> None:
    result = run_tick(tick(Position("c1", 0, 800), buys("b1", 500)), COMMUNITY, rule)
    assert trades(result) == []


@pytest.mark.parametrize("rule", ALL)
def test_prices_stay_in_the_band(rule: str) -> None:
    positions = (sells("s1", 500, Order(10_000, 1)), buys("b1", 500, Order(900_000, 2)))
    (trade,) = trades(run_tick(tick(*positions), COMMUNITY, rule))
    assert 80_000 <= trade[3] <= 310_000
    # A fee that eats the whole spread closes the market.
    closed = TickPrices(feed_in=80_000, grid_import=100_000, fee=30_000)
    assert trades(run_tick(tick(*positions, prices=closed), COMMUNITY, rule)) == []


@pytest.mark.parametrize(("fixed", "expected"), [(250_000, 250_000), (50_000, 80_000), (400_000, 310_000)])
def test_a_fixed_community_price_is_clamped_into_the_band(fixed: int, expected: int) -> None:
    for rule in ("greedy", "proportional"):
        (trade,) = trades(run_tick(tick(sells("s1", 500), buys("b1", 500), fixed_price=fixed), COMMUNITY, rule))
        assert trade[3] == expected


def test_money_per_trade_is_exact() -> None:
    result = run_tick(tick(sells("s1", 1_234), buys("b1", 1_234)), COMMUNITY, "greedy")
    b = result.balances
    # 1,234 Wh at 19.5 ct/kWh = 0.24063 EUR to the seller; the buyer pays 20.5 ct/kWh.
    assert b.revenue.tolist() == [0, 1_234 * MID]
    assert b.cost.tolist() == [1_234 * (MID + 10_000), 0]
    assert b.fee.tolist() == [1_234 * 10_000, 0]
    assert b.saving.tolist() == [1_234 * (320_000 - MID - 10_000), 1_234 * (MID - 80_000)]
    assert int(b.net.sum()) == -int(b.fee.sum())


def test_a_reading_ingested_twice_counts_once() -> None:
    result = run_tick(tick(sells("s1", 500), sells("s1", 500), buys("b1", 500), buys("b1", 500)), COMMUNITY, "greedy")
    assert trades(result) == [("s1", "b1", 500, MID)]


def test_two_different_positions_for_one_member_in_one_tick_are_refused() -> None:
    with pytest.raises(CommunityError, match=r"member s1 has two different positions \(0/500 Wh and 0/600 Wh"):
        tick(sells("s1", 500), sells("s1", 600))


def test_bad_input_is_named() -> None:
    with pytest.raises(CommunityError, match="position for 'stranger', which is not a member"):
        run_tick(tick(sells("stranger", 500)), COMMUNITY, "greedy")
    with pytest.raises(CommunityError, match=r"rule: 'auction' is not allowed \(one of greedy, proportional"):
        run_tick(tick(), COMMUNITY, "auction")
    with pytest.raises(CommunityError, match=r"member m: inverter_w: -5 is not allowed \(an integer from 0"):
        Member("m", Role.PROSUMER, inverter_w=-5)
    with pytest.raises(CommunityError, match=r"role: 'landlord' is not allowed \(one of prosumer, consumer\)"):
        Member("m", "landlord")  # type: ignore[arg-type]
    with pytest.raises(CommunityError, match=r"position s1: export_wh: 1.5 is not allowed"):
        Position("s1", 0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(CommunityError, match=r"tick: start 100 is not allowed \(a multiple of the length 900 s\)"):
        type(tick())(100, tick().prices, ())
    with pytest.raises(CommunityError, match="member id: 'a' appears twice"):
        members_by_id([buyer("a"), buyer("a")])
    assert START % 900 == 0


def test_the_rule_names_offered_are_the_rules() -> None:
    from cloud_sync.community.model import RULE_NAMES

    assert tuple(RULES) == RULE_NAMES
