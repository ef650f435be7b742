"""Properties of every rule on random ticks (hypothesis): energy is conserved, no limit is
broken, prices stay in the band and the members' limits, and the answer does not depend on the
order the positions arrived in."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.community.model import MIN_TRADE_WH, Member, Order, Position, Role, Tick, TickPrices, members_by_id
from cloud_sync.community.rules import RULES
from cloud_sync.community.settle import run_tick, violations
from tests.cloud_sync.community.market import START

BUDGET = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow])

orders = st.one_of(st.none(), st.builds(Order, st.integers(-50_000, 600_000), st.integers(0, 5)))


@st.composite
def ticks(draw: st.DrawFn) -> tuple[Tick, dict[str, Member], int]:
    n = draw(st.integers(1, 25))
    members = [
        Member(f"m{i:02d}", draw(st.sampled_from(Role)), inverter_w=draw(st.integers(0, 20_000)),
               export_limit_w=draw(st.one_of(st.none(), st.integers(0, 20_000))))
        for i in range(n)
    ]
    positions = [
        Position(m.id, draw(st.integers(0, 4_000)), draw(st.integers(0, 4_000)), draw(orders), draw(orders))
        for m in members
        if draw(st.booleans()) or m.id == "m00"
    ]
    feed_in = draw(st.integers(-20_000, 200_000))
    prices = TickPrices(feed_in, draw(st.integers(feed_in - 20_000, 500_000)), draw(st.integers(0, 60_000)))
    fixed = draw(st.one_of(st.none(), st.integers(-100_000, 600_000)))
    return Tick(START, prices, tuple(positions), fixed_price=fixed), dict(members_by_id(members)), draw(st.integers(0, 99))


@BUDGET
@given(ticks())
def test_every_rule_conserves_energy_and_keeps_every_limit(case: tuple[Tick, dict[str, Member], int]) -> None:
    tick, members, seed = case
    for name in RULES:
        result = run_tick(tick, members, name)  # settle refuses trades that break a rule
        book, t, b = result.book, result.trades, result.balances
        assert violations(book, t) == []
        assert result.conservation_error_wh == 0
        assert int(b.sold_wh.sum()) == int(b.bought_wh.sum()) == int(t.wh.sum())
        assert (b.grid_export_wh >= 0).all() and (b.grid_import_wh >= 0).all()
        assert (b.sold_wh + b.grid_export_wh == book.surplus).all()
        assert (b.bought_wh + b.grid_import_wh == book.deficit).all()
        assert (t.wh >= MIN_TRADE_WH).all()
        assert all(members[book.ids[s]].role is Role.PROSUMER for s in t.seller.tolist())
        for s in set(t.seller.tolist()):
            m = members[book.ids[s]]
            limit = m.inverter_w if m.export_limit_w is None else min(m.inverter_w, m.export_limit_w)
            assert b.sold_wh[s] <= limit * 900 // 3600
        if len(t):
            assert book.prices.feed_in <= int(t.price.min()) and int(t.price.max()) + book.prices.fee <= book.prices.grid_import
        n_sellers, n_buyers = len(book.sellers(MIN_TRADE_WH)), len(book.buyers(MIN_TRADE_WH))
        assert len(t) <= max(n_sellers + n_buyers - 1, 0)
        assert int(b.net.sum()) == -int(b.fee.sum())  # money is conserved too: the platform keeps the fee
        if name in ("greedy", "proportional") and book.open:
            possible = min(int(book.cap[book.sellers(MIN_TRADE_WH)].sum()), int(book.need[book.buyers(MIN_TRADE_WH)].sum()))
            assert int(t.wh.sum()) >= possible - (MIN_TRADE_WH - 1) * (n_sellers + n_buyers)
        if name in ("price_priority", "uniform_price"):
            assert (book.ask[t.seller] <= t.price).all() and (t.price <= book.bid[t.buyer]).all()
        if name == "uniform_price":
            assert len(np.unique(t.price)) <= 1
        shuffled = list(tick.positions)
        random.Random(seed).shuffle(shuffled)
        again = run_tick(Tick(tick.start, tick.prices, tuple(shuffled), fixed_price=tick.fixed_price), members, name)
        assert again.digest() == result.digest()
