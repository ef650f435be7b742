"""Schedule documents: what the aggregator accepts in the ``schedules`` stream."""

from __future__ import annotations

from typing import Any

import pytest

from common.sync_values import ValueProblem, check_document, repair

NOW = 1_800_000_000.0
GOOD = {"ts": NOW, "day": "2027-01-15", "revision": 2, "kind": "intraday", "slots": [[1_800_000_900, 250, 0]]}


def test_a_schedule_is_accepted() -> None:
    assert check_document("schedules", dict(GOOD), NOW) == NOW
    with_flexibility = {**GOOD, "slots": [[1_800_000_900, 250, 0, 1250, 875]]}
    assert check_document("schedules", with_flexibility, NOW) == NOW


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"day": "15.01.2027"}, "data.day", "expected YYYY-MM-DD"),
    ({"kind": "weekly"}, "data.kind", "allowed: day_ahead, intraday"),
    ({"revision": -1}, "data.revision", "expected an integer 0 to 100000"),
    ({"slots": []}, "data.slots", "expected 1 to 100"),
    ({"slots": [[1_800_000_901, 1, 0]]}, "data.slots.0", "slot start (a multiple of 900)"),
    ({"slots": [[1_800_000_900, 1.5, 0]]}, "data.slots.0", "whole Wh 0 to 250000"),
    ({"slots": [[1_800_000_900, 0, -1]]}, "data.slots.0", "whole Wh 0 to 250000"),
    ({"slots": [[1_800_000_900, 0, 1, 5]]}, "data.slots.0", "or [..., flexibility up Wh, down Wh]"),
    ({"slots": [[1_800_000_900, 0, 1, 5, -2]]}, "data.slots.0", "whole Wh 0 to 250000"),
])
def test_a_malformed_schedule_is_refused_and_not_repaired(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValueProblem) as caught:
        check_document("schedules", {**GOOD, **change}, NOW)
    assert caught.value.field == field and message in str(caught.value)
    assert repair("schedules", {"seq": 1, "key": "k", "data": {**GOOD, **change}}, NOW)[0] is None
