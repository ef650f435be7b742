"""The matching rules, one module each, all the same shape: ``match(book) -> Pairs``.

Every rule works only on what the book allows (caps, needs, clamped limits) and produces
trades of at least the minimum size; :func:`cloud_sync.community.settle.settle` checks each
of these promises again before anything is settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloud_sync.community.book import Book
from cloud_sync.community.model import CommunityError
from cloud_sync.community.pairs import Pairs
from cloud_sync.community.rules import greedy, price_priority, proportional, uniform_price


@dataclass(frozen=True)
class Rule:
    name: str
    match: Callable[[Book], Pairs]
    summary: str


#: In the order of :data:`cloud_sync.community.model.RULE_NAMES` (which the CLI offers without loading numpy).
RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("greedy", greedy.match, "largest surplus to largest deficit, at the community price"),
        Rule("proportional", proportional.match, "supply and demand shared pro rata, at the community price"),
        Rule("price_priority", price_priority.match, "limit orders by price-time priority, at the earlier order's price"),
        Rule("uniform_price", uniform_price.match, "one clearing price where supply meets demand"),
    )
}




def rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise CommunityError(f"rule: {name!r} is not allowed (one of {', '.join(RULES)})") from None
