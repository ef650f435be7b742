"""Fuzzing ``cmd/dr_event`` (the planner's demand-response command) with hypothesis.

Every generated event is a valid one plus one hostile mutation; each must be refused on
``cmd/result`` with the caller's id (when the payload had a readable string id) and a reason,
and the planner must not adopt it. Fixed, derandomised example budget.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device.controller import Controller
from device.home.effective import EffectiveSettings
from device.mqtt import Topics
from device.replanning import PlanningService
from device.store import AsyncStore
from tests.device.test_replanning import NOW, cfg
from tests.simulated_clock import SimulatedClock

BUDGET = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])
TOPIC = "nattery/p1/cmd/dr_event"

hostile_values = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), True, False, None, "soon", "2024-06-01T12:00:00",
                     10**400, 1e300, -1e300]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@st.composite
def hostile_events(draw: st.DrawFn) -> tuple[bytes, str | None]:
    event: dict[str, Any] = {"id": "e1", "start": NOW + 3600, "end": NOW + 7200, "cap_w": 0}
    kind = draw(st.sampled_from(["value", "id", "window", "nesting", "bytes", "stale"]))
    if kind == "value":
        event[draw(st.sampled_from(["start", "end", "cap_w"]))] = draw(hostile_values)
    elif kind == "id":
        event["id"] = draw(st.one_of(st.none(), st.just(""), st.integers(), st.lists(st.text(max_size=2))))
    elif kind == "window":
        start, end = draw(st.sampled_from([
            (NOW - 7200, NOW - 3600),  # over
            (NOW + 8 * 86400, NOW + 8 * 86400 + 60),  # too far ahead
            (NOW, NOW + 3 * 86400),  # too long
            (NOW + 7200, NOW + 3600),  # backwards
            (NOW + 60, NOW + 60),  # empty
        ]))
        event.update(start=start, end=end)
    elif kind == "stale":
        event["ts"] = NOW - draw(st.sampled_from([3600, 11, -11]))
    if kind == "nesting":
        return b'{"id": "e1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None
    if kind == "bytes":
        return draw(st.binary(max_size=40).filter(lambda b: not b.strip().startswith(b"{"))) or b"x", None
    wanted = event["id"] if isinstance(event.get("id"), str) and event["id"] else None
    return json.dumps(event).encode(), wanted


def test_hostile_demand_response_events_are_refused(tmp_path: Path) -> None:
    published: list[Any] = []

    async def publish(topic: str, payload: Any, **kw: Any) -> None:
        published.append((topic, payload))

    async def build() -> PlanningService:
        c = cfg(tmp_path)
        clock = SimulatedClock(NOW, auto=False)  # time stands still: the events are judged at NOW
        ctl = Controller(Topics("nattery", "p1"), publish, clock=clock)
        return PlanningService(await EffectiveSettings.open(c), AsyncStore(c.db_path), ctl, publish=publish,
                               clock=clock)

    svc = asyncio.run(build())

    @BUDGET
    @given(hostile_events())
    def refused(case: tuple[bytes, str | None]) -> None:
        payload, wanted = case
        published.clear()
        asyncio.run(svc.on_message(TOPIC, payload))
        (topic, reply), = published
        assert topic == "nattery/p1/cmd/result" and reply["ok"] is False and reply["error"].startswith("dr_event: ")
        assert reply["id"] == wanted, reply
        assert svc.events == []

    refused()
    # and a valid event is still adopted afterwards
    asyncio.run(svc.on_message(TOPIC, json.dumps({"id": "ok", "start": NOW + 60, "end": NOW + 3600,
                                                   "cap_w": 0}).encode()))
    assert published[-1][1] == {"id": "ok", "ok": True} and len(svc.events) == 1
