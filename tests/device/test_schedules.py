"""The plan becomes the home's committed schedule at the day-ahead cut-off, then intraday revisions."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from device import schedules
from device.config import ConfigError, MarketSettings
from device.store import Store

BERLIN = ZoneInfo("Europe/Berlin")
CUTOFF = (14, 30)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def a_plan(start: float, hours: int, import_w: float = 1000.0, export_w: float = 0.0) -> dict[str, Any]:
    first = int(start) // 900 * 900
    return {"slots": [{"ts": first + 900 * k, "import_w": import_w, "export_w": export_w}
                      for k in range(hours * 4)]}


def outbox(store: Store) -> list[tuple[str, dict[str, Any]]]:
    rows = store.db.execute("SELECT key, data FROM outbox WHERE stream = 'schedules' ORDER BY seq").fetchall()
    return [(key, json.loads(data)) for key, data in rows]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "nattery.db")


def test_nothing_is_committed_before_the_cutoff(store: Store) -> None:
    assert schedules.commit(store, a_plan(at("2026-06-16T14:15"), 40), at("2026-06-16T14:15"), CUTOFF) == []


def test_the_first_plan_after_the_cutoff_that_covers_tomorrow_commits_it(store: Store) -> None:
    short = a_plan(at("2026-06-16T14:30"), 20)  # ends before tomorrow ends: cannot commit yet
    assert schedules.commit(store, short, at("2026-06-16T14:30"), CUTOFF) == []
    now = at("2026-06-16T14:45")
    assert schedules.commit(store, a_plan(now, 40, 1001.0, 3.0), now, CUTOFF) == [("2026-06-17", 0)]
    (key, doc), = outbox(store)
    assert key == "2026-06-17/0" and doc["kind"] == "day_ahead" and doc["revision"] == 0
    assert len(doc["slots"]) == 96
    assert doc["slots"][0] == [int(at("2026-06-17T00:00")), 250, 1]  # 1001 W for ¼ h = 250.25 Wh → 250
    assert schedules.commit(store, a_plan(now + 900, 40, 1001.0, 3.0), now + 900, CUTOFF) == []  # unchanged


def test_a_changed_replan_is_an_intraday_revision_of_the_slots_to_come(store: Store) -> None:
    now = at("2026-06-16T15:00")
    schedules.commit(store, a_plan(now, 40), now, CUTOFF)
    later = at("2026-06-17T10:07")
    written = schedules.commit(store, a_plan(later, 30, import_w=2000.0), later, CUTOFF)
    assert written == [("2026-06-17", 1)]
    revision = outbox(store)[-1][1]
    assert revision["kind"] == "intraday"
    assert revision["slots"][0][0] == int(at("2026-06-17T10:15"))  # the running slot is not rewritten
    assert len(revision["slots"]) == 55  # 10:15 … 23:45
    committed = store.committed_schedule("2026-06-17")
    assert committed is not None
    assert committed[0] == 1
    assert committed[1][int(at("2026-06-17T10:00"))] == (250, 0)
    assert committed[1][int(at("2026-06-17T10:15"))] == (500, 0)


def test_clock_change_days_commit_92_and_100_quarter_hours(store: Store) -> None:
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        before = (day - timedelta(days=1)).isoformat()
        now = at(f"{before}T16:00")
        assert schedules.commit(store, a_plan(now, 40), now, CUTOFF) == [(day.isoformat(), 0)]
    assert [len(doc["slots"]) for _, doc in outbox(store)] == [92, 100]


def test_the_cutoff_setting_is_checked() -> None:
    assert MarketSettings(schedule_cutoff="09:05").schedule_cutoff == "09:05"
    with pytest.raises(ConfigError, match=r"market.schedule_cutoff: got '14h30', allowed: HH:MM \(00:00-23:59\)"):
        MarketSettings(schedule_cutoff="14h30")
