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
from device.plan.model import Battery
from device.store import Retention, Store

BERLIN = ZoneInfo("Europe/Berlin")
CUTOFF = (14, 30)
LIMITS = schedules.Limits(Battery())  # 10 kWh, floor 10 %, 5 kW each way, 95 % each way


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def a_plan(start: float, hours: int, import_w: float = 1000.0, export_w: float = 0.0) -> dict[str, Any]:
    first = int(start) // 900 * 900
    return {"slots": [{"ts": first + 900 * k, "import_w": import_w, "export_w": export_w, "charge_w": 0.0,
                       "discharge_w": 0.0, "soc_pct": 50.0} for k in range(hours * 4)]}


def outbox(store: Store) -> list[tuple[str, dict[str, Any]]]:
    rows = store.db.execute("SELECT key, data FROM outbox WHERE stream = 'schedules' ORDER BY seq").fetchall()
    return [(key, json.loads(data)) for key, data in rows]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "nattery.db")


def test_nothing_is_committed_before_the_cutoff(store: Store) -> None:
    assert schedules.commit(store, a_plan(at("2026-06-16T14:15"), 40), at("2026-06-16T14:15"), CUTOFF, LIMITS) == []


def test_the_first_plan_after_the_cutoff_that_covers_tomorrow_commits_it(store: Store) -> None:
    short = a_plan(at("2026-06-16T14:30"), 20)  # ends before tomorrow ends: cannot commit yet
    assert schedules.commit(store, short, at("2026-06-16T14:30"), CUTOFF, LIMITS) == []
    now = at("2026-06-16T14:45")
    assert schedules.commit(store, a_plan(now, 40, 1001.0, 3.0), now, CUTOFF, LIMITS) == [("2026-06-17", 0)]
    (key, doc), = outbox(store)
    assert key == "2026-06-17/0" and doc["kind"] == "day_ahead" and doc["revision"] == 0
    assert len(doc["slots"]) == 96
    # 1001 W for ¼ h = 250.25 Wh → 250; at 50 % the battery could charge or discharge its 5 kW for ¼ h more
    assert doc["slots"][0] == [int(at("2026-06-17T00:00")), 250, 1, 1250, 1250]
    assert schedules.commit(store, a_plan(now + 900, 40, 1001.0, 3.0), now + 900, CUTOFF, LIMITS) == []  # unchanged


def test_a_changed_replan_is_an_intraday_revision_of_the_slots_to_come(store: Store) -> None:
    now = at("2026-06-16T15:00")
    schedules.commit(store, a_plan(now, 40), now, CUTOFF, LIMITS)
    later = at("2026-06-17T10:07")
    written = schedules.commit(store, a_plan(later, 30, import_w=2000.0), later, CUTOFF, LIMITS)
    assert written == [("2026-06-17", 1)]
    revision = outbox(store)[-1][1]
    assert revision["kind"] == "intraday"
    assert revision["slots"][0][0] == int(at("2026-06-17T10:15"))  # the running slot is not rewritten
    assert len(revision["slots"]) == 55  # 10:15 … 23:45
    committed = store.committed_schedule("2026-06-17")
    assert committed is not None
    assert committed[0] == 1
    assert committed[1][int(at("2026-06-17T10:00"))] == (250, 0, 1250, 1250)
    assert committed[1][int(at("2026-06-17T10:15"))] == (500, 0, 1250, 1250)


def test_a_replan_that_moves_only_the_flexibility_is_no_revision(store: Store) -> None:
    now = at("2026-06-16T15:00")
    schedules.commit(store, a_plan(now, 40), now, CUTOFF, LIMITS)
    fuller = a_plan(now + 900, 40)
    for slot in fuller["slots"]:
        slot["soc_pct"] = 99.0
    assert schedules.commit(store, fuller, now + 900, CUTOFF, LIMITS) == []


def flex(slot: dict[str, float], soc_start: float | None, limits: schedules.Limits = LIMITS) -> tuple[int, int]:
    return schedules.flexibility({"import_w": 0.0, "export_w": 0.0, "charge_w": 0.0, "discharge_w": 0.0,
                                  "soc_pct": 50.0, **slot}, soc_start, limits)


def test_flexibility_within_the_battery_and_the_connection() -> None:
    # Worked by hand for a 10 kWh battery, floor 10 %, 5 kW (1250 Wh a quarter-hour) each way, 95 %.
    charging = {"import_w": 3000.0, "charge_w": 2000.0, "soc_pct": 44.75}  # 500 Wh in, from 40 % (4000 Wh)
    # up: 1250 Wh of charging at most, 500 planned → 750; down: stop charging (500) and discharge 1250 → 1750
    assert flex(charging, 40.0) == (750, 1750)
    assert flex(charging, None) == (750, 1750)  # the start derived from the slot: 44.75 % − 500 Wh × 0.95
    # a 12 kW connection leaves 3000 − 750 Wh of import; 1 kW of feed-in bounds down at 750 + 250 Wh
    connection = schedules.Limits(Battery(), import_limit_w=12_000.0, export_limit_w=1000.0)
    assert flex(charging, 40.0, connection) == (750, 1000)
    assert flex({"import_w": 11_000.0}, 50.0, connection) == (250, 1250)  # 3000 − 2750 Wh
    # near full: 100 Wh of room takes 100 / 0.95 = 105.26 Wh from the grid; near the floor (11 %):
    # 100 Wh above it give 95 Wh
    assert flex({"soc_pct": 99.0}, 99.0) == (105, 1250)
    assert flex({"soc_pct": 11.0}, 11.0) == (1250, 95)
    # below the floor or above the ceiling (a measured state the plan starts from): nothing that way
    assert flex({"soc_pct": 8.0}, 8.0) == (1250, 0)
    # discharging 1250 Wh at full power: up is stopping it and charging 1250 → 2500; down 0 more
    assert flex({"discharge_w": 5000.0, "export_w": 4000.0}, 60.0) == (2500, 0)


def test_committed_slots_carry_the_flexibility_from_the_plans_soc_trajectory(store: Store) -> None:
    now = at("2026-06-16T15:00")
    plan = a_plan(now, 40)
    for slot in plan["slots"]:
        slot["soc_pct"] = 99.0  # the battery full all day, except:
    tomorrow = int(at("2026-06-17T00:00"))
    first = next(i for i, s in enumerate(plan["slots"]) if s["ts"] == tomorrow)
    plan["slots"][first - 1]["soc_pct"] = 11.0  # 23:45 ends at 11 %: tomorrow's first slot starts there
    plan["slots"][first].update(charge_w=4000.0, soc_pct=11.0 + 1000 * 0.95 / 100)  # 1000 Wh in
    schedules.commit(store, plan, now, CUTOFF, LIMITS)
    (_, doc), = outbox(store)
    # from 11 % (the previous slot's end): up 1250 − 1000 = 250, down 1000 + 100 × 0.95 = 1095
    assert doc["slots"][0] == [tomorrow, 250, 0, 250, 1095]
    # the next from 20.5 %: room for 1250 Wh; 1050 Wh above the floor give 997.5 Wh → 997
    assert doc["slots"][1][3:] == [1250, 997]
    assert doc["slots"][2][3:] == [105, 1250]  # from 99 %


def test_committed_schedules_go_with_the_plans_retention(tmp_path: Path) -> None:
    store = Store(tmp_path / "nattery.db", Retention(plans_days=30))
    old, recent = at("2026-05-01T15:00"), at("2026-06-16T15:00")
    for now in (old, old + 20 * 3600, recent):  # a day-ahead version and a revision, then a month later
        schedules.commit(store, a_plan(now, 40, import_w=1000.0 + now % 7), now, CUTOFF, LIMITS)
    assert store.committed_schedule("2026-05-02") is not None
    deleted = store.prune(at("2026-06-17T12:00"))
    assert deleted["schedules"] == 2
    assert store.committed_schedule("2026-05-02") is None
    kept = store.committed_schedule("2026-06-17")
    assert kept is not None and kept[0] == 0 and len(kept[1]) == 96


def test_clock_change_days_commit_92_and_100_quarter_hours(store: Store) -> None:
    for day in (date(2026, 3, 29), date(2026, 10, 25)):
        before = (day - timedelta(days=1)).isoformat()
        now = at(f"{before}T16:00")
        assert schedules.commit(store, a_plan(now, 40), now, CUTOFF, LIMITS) == [(day.isoformat(), 0)]
    assert [len(doc["slots"]) for _, doc in outbox(store)] == [92, 100]


def test_the_cutoff_setting_is_checked() -> None:
    assert MarketSettings(schedule_cutoff="09:05").schedule_cutoff == "09:05"
    with pytest.raises(ConfigError, match=r"market.schedule_cutoff: got '14h30', allowed: HH:MM \(00:00-23:59\)"):
        MarketSettings(schedule_cutoff="14h30")
