"""The planning loop against a real SQLite store; the controller's MQTT side is captured."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device import config as configuration
from device.controller import Controller
from device.home.effective import EffectiveSettings
from device.home.settings import HomeSettings, make_override, update_sections
from device.mqtt import Topics
from device.replanning import PlanningService, replan_reason
from device.store import AsyncStore, Store

NOW = datetime(2024, 6, 1, 9, 5, tzinfo=UTC).timestamp()  # 11:05 local
DAY0 = int(datetime(2024, 5, 31, 22, tzinfo=UTC).timestamp())  # local midnight


class Clock:
    """Time the test sets (``t``): the planning service and the controller use it as their Clock."""

    speed = 1.0

    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)
        await asyncio.sleep(0)


def cfg(tmp_path: Path) -> configuration.Config:
    return configuration.load([configuration.DEFAULT_FILE], environ={},
                              overrides={"device": {"id": "p1", "data_dir": str(tmp_path)}})


async def service(tmp_path: Path, with_prices: bool = True) -> tuple[PlanningService, AsyncStore, list[Any]]:
    c = cfg(tmp_path)
    store = await AsyncStore(c.db_path).open()
    if with_prices:
        hours = np.arange(24)
        spot = 80 + 60 * np.exp(-((hours - 19) ** 2) / 4) - 40 * np.exp(-((hours - 13) ** 2) / 6)
        rows = [{"zone": "DE_LU", "ts": DAY0 + 3600 * h, "resolution_s": 3600, "price_eur_mwh": float(spot[h]),
                 "source": "csv", "fetched_at": 0.0} for h in range(24)]
        await store.call(lambda s: s.db.table("prices").insert_all(rows))  # type: ignore[arg-type]
    published: list[Any] = []

    async def publish(topic: str, payload: Any, **kw: Any) -> None:
        published.append((topic, payload))

    clock = Clock(NOW)
    ctl = Controller(Topics("nattery", "p1"), publish, clock=clock)
    settings = await EffectiveSettings.open(c)
    return PlanningService(settings, store, ctl, publish=publish, clock=clock), store, published


async def homeowner_sets(svc: PlanningService, changes: dict[str, dict[str, Any]]) -> None:
    await svc.settings.change(lambda home: update_sections(home, svc.settings.base, changes))


async def test_plans_until_the_end_of_known_prices_stores_and_hands_over(tmp_path: Path) -> None:
    svc, store, published = await service(tmp_path)
    try:
        p = await svc.step()
        assert p is not None and p.reason == "start"
        # 11:05 → end of the local day: 51 slots, the first one partly over
        assert len(p.ts) == 52 and p.ts[0] == int(NOW // 900) * 900
        assert svc.controller.plan is p
        assert any(t == "nattery/p1/plan" for t, _ in published)
        stored = await store.call(Store.latest_plan)
        assert stored is not None and stored["reason"] == "start" and len(stored["slots"]) == 52
        # the cheap midday hours are for PV or grid charging, the evening peak for discharging
        evening = (p.ts >= DAY0 + 18 * 3600) & (p.ts < DAY0 + 21 * 3600)
        assert p.discharge_w[evening].sum() > 0
        assert await svc.step() is None  # nothing changed
        await homeowner_sets(svc, {"planner": {"mode": "self_consumption"}})
        p2 = await svc.step()
        assert p2 is not None and p2.reason == "inputs"
        assert {s.action for s in p2.setpoints} == {"self_consumption"}
        svc.clock.t += 900  # type: ignore[attr-defined]
        p3 = await svc.step()
        assert p3 is not None and p3.reason == "slot"
    finally:
        await store.close()


async def test_soc_off_the_plan_triggers_a_replan() -> None:
    from device.plan.model import Battery, Inputs
    from device.plan.schedule import plan

    n = 8
    ts = (int(NOW // 900) * 900 + 900 * np.arange(n)).astype(np.int64)
    p = plan(Inputs(ts, np.full(n, 300.0), np.full(n, 79.4), np.full(n, 500.0), np.zeros(n), 50.0), Battery())
    key = ("k",)
    assert replan_reason(NOW, p, key, key, p.soc_at(NOW), 3.0) is None
    assert (replan_reason(NOW, p, key, key, (p.soc_at(NOW) or 0) + 5, 3.0) or "").startswith("soc off plan")
    assert replan_reason(NOW, p, key, ("other",), None, 3.0) == "inputs"
    assert replan_reason(NOW + 900, p, key, key, None, 3.0) == "slot"
    assert replan_reason(NOW, None, None, key, None, 3.0) == "start"


async def test_without_prices_the_plan_is_self_consumption_and_says_why(tmp_path: Path) -> None:
    svc, store, _ = await service(tmp_path, with_prices=False)
    try:
        p = await svc.step()
        assert p is not None
        assert {s.action for s in p.setpoints} == {"self_consumption"}
        assert any("no price" in c for c in p.compromises)
    finally:
        await store.close()


async def test_demand_response_event_over_mqtt_is_honoured(tmp_path: Path) -> None:
    svc, store, published = await service(tmp_path)
    try:
        await svc.step()
        start, end = DAY0 + 18 * 3600, DAY0 + 20 * 3600
        body = {"id": "dr1", "start": "2024-06-01T16:00:00Z", "end": end, "cap_w": 0}
        await svc.on_message("nattery/p1/cmd/dr_event", json.dumps(body).encode())
        assert ("nattery/p1/cmd/result", {"id": "dr1", "ok": True}) in published
        p = await svc.step()
        assert p is not None and p.reason == "inputs"
        inside = (p.ts >= start) & (p.ts < end)
        assert p.import_w[inside].max() <= 1.0 and p.compromises == []
        await svc.on_message("nattery/p1/cmd/dr_event", b'{"id": "dr2", "start": 5, "end": 1, "cap_w": 0}')
        assert published[-1][1]["ok"] is False and "end must be after start" in published[-1][1]["error"]
        await svc.on_message("nattery/p1/cmd/dr_event", b'{"id": "dr3", "start": 1, "end": 5, "cap_w": -1}')
        assert "cap_w (watts) must be >= 0" in published[-1][1]["error"]
    finally:
        await store.close()


@pytest.mark.parametrize("payload, error", [
    (b'{"id": "n1", "start": 1, "end": 5, "cap_w": NaN}', "NaN is not a JSON number"),
    (b'{"id": "n1", "start": NaN, "end": 5, "cap_w": 0}', "NaN is not a JSON number"),
    (b'{"id": "n1", "start": 1, "end": 5, "cap_w": 1e999}', "out of range"),
    (b'{"id": "n1", "start": 1, "end": 5, "cap_w": true}', "cap_w (watts) must be a finite number"),
    (b'{"id": "n1", "start": "soon", "end": 5, "cap_w": 0}', "start must be epoch seconds"),
    (b'{"id": "n1", "start": 1, "end": 5, "cap_w": 1e300}', "cap_w (watts) must be at most 1000000 (1 MW), got 1e+300"),
])
async def test_demand_response_refusals_keep_the_callers_id(tmp_path: Path, payload: bytes, error: str) -> None:
    svc, store, published = await service(tmp_path)
    try:
        await svc.on_message("nattery/p1/cmd/dr_event", payload)
        reply = published[-1][1]
        assert reply["id"] == "n1" and reply["ok"] is False and error in reply["error"], reply
        assert svc.events == []
    finally:
        await store.close()


async def test_a_retained_demand_response_event_is_refused(tmp_path: Path) -> None:
    svc, store, published = await service(tmp_path)
    try:
        await svc.on_retained("nattery/p1/cmd/dr_event", b'{"id": "old", "start": 1, "end": 5, "cap_w": 0}')
        assert published[-1][1]["id"] == "old" and "retained commands are refused" in published[-1][1]["error"]
        assert svc.events == []
    finally:
        await store.close()


async def test_the_price_forecast_extends_the_plan_to_the_configured_horizon(tmp_path: Path) -> None:
    svc, store, _ = await service(tmp_path)
    try:
        tomorrow = DAY0 + 86400
        rows = [{"kind": "price", "made_at": int(NOW) - 3600, "ts": tomorrow + 3600 * h, "value": 90.0 + h}
                for h in range(24)]
        await store.call(lambda s: s.db.table("forecasts").insert_all(rows))  # type: ignore[arg-type]
        p = await svc.step()
        assert p is not None
        assert len(p.ts) == 96  # planner.horizon_h = 24 h from the current slot
        # forecast hours are carried over their four quarter-hours
        first_forecast = int(np.flatnonzero(p.ts == tomorrow)[0])
        assert len(set(p.import_price[first_forecast:first_forecast + 4].round(6))) == 1
    finally:
        await store.close()


def test_nattery_plan_shows_the_plan_without_sending_anything(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from device.cli import main

    c = cfg(tmp_path)
    store = Store(c.db_path)
    now = datetime.now(UTC).timestamp()
    hour = int(now // 3600) * 3600
    store.db.table("prices").insert_all(
        {"zone": "DE_LU", "ts": hour + 3600 * h, "resolution_s": 3600, "price_eur_mwh": 50.0 + 30 * (h % 3),
         "source": "csv", "fetched_at": now} for h in range(12)
    )
    store.close()
    installer = tmp_path / "nattery.yaml"
    installer.write_text(f"device:\n  data_dir: {tmp_path}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["plan", "--config", str(installer), "--soc", "40", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["reason"] == "preview" and 44 <= len(data["slots"]) <= 48
    table = runner.invoke(main, ["plan", "--config", str(installer), "--soc", "40", "--mode", "self_consumption"])
    assert table.exit_code == 0 and "self_consumption" in table.output and "import ct/kWh" in table.output
    assert Store(c.db_path).latest_plan() is None  # a preview stores nothing
    bad = runner.invoke(main, ["plan", "--config", str(installer), "--soc", "150"])
    assert bad.exit_code != 0 and "150" in bad.output



def test_nattery_plan_reads_the_local_data_dir_and_the_homeowners_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --data-dir, ``plan`` reads ./data as ``nattery run`` writes it (before the data
    volume, which may hold a store from elsewhere); the homeowner's mode and a running manual
    override count; no store is an error, never a new database."""
    from click.testing import CliRunner

    from device.cli import main
    from device.home.settings import SettingsFile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NATTERY_DEVICE_DATA_DIR", str(tmp_path / "volume"))  # no store there
    runner = CliRunner()
    missing = runner.invoke(main, ["plan"])
    assert missing.exit_code == 1
    assert missing.output.strip() == f"Error: no store at {tmp_path / 'data' / 'nattery.db'} or " \
        f"{tmp_path / 'volume' / 'nattery.db'}: give --data-dir, or start `nattery run --simulate` (or the device) first"
    assert not (tmp_path / "data").exists() and not (tmp_path / "volume").exists()
    elsewhere = runner.invoke(main, ["plan", "--data-dir", str(tmp_path / "nowhere")])
    assert elsewhere.exit_code == 1 and "nowhere" in elsewhere.output and not (tmp_path / "nowhere").exists()

    (tmp_path / "volume").mkdir()
    Store(tmp_path / "volume" / "nattery.db").close()  # the device's volume: a store without prices
    on_volume = json.loads(runner.invoke(main, ["plan", "--json"]).output.strip().splitlines()[-1])
    assert any("no price" in note for note in on_volume["compromises"])

    local = tmp_path / "data"
    local.mkdir()
    store = Store(local / "nattery.db")
    now = datetime.now(UTC).timestamp()
    hour = int(now // 3600) * 3600
    store.db.table("prices").insert_all(
        {"zone": "DE_LU", "ts": hour + 3600 * h, "resolution_s": 3600, "price_eur_mwh": 50.0 + 30 * (h % 3),
         "source": "csv", "fetched_at": now} for h in range(12))
    store.close()
    settings = SettingsFile(local / "settings.json")
    asyncio.run(settings.save(HomeSettings({"planner": {"mode": "self_consumption"}})))
    standing = json.loads(runner.invoke(main, ["plan", "--soc", "40", "--json"]).output.strip().splitlines()[-1])
    assert standing["mode"] == "self_consumption" and standing["compromises"] == []  # ./data comes first
    override = make_override("discharge", 1200, now + 3600, now, {"charge": 5000, "discharge": 5000})
    asyncio.run(settings.save(HomeSettings({"planner": {"mode": "self_consumption"}}, override)))
    manual = runner.invoke(main, ["plan", "--data-dir", str(local), "--soc", "40", "--json"])
    data = json.loads(manual.output.strip().splitlines()[-1])
    assert data["mode"] == "manual" and data["slots"][0]["action"] == "discharge"
    assert data["slots"][0]["power_w"] == 1200


def below_after_reaching(soc: Any, pct: float) -> bool:
    """Whether the SoC falls below ``pct`` after it first reached it."""
    reached = np.flatnonzero(soc >= pct)
    return bool(reached.size) and bool(soc[reached[0]:].min() < pct - 1e-6)


async def test_a_homeowner_change_wakes_the_planner_and_counts_in_the_next_plan(tmp_path: Path) -> None:
    svc, store, _ = await service(tmp_path)
    try:
        first = await svc.step()
        assert first is not None and below_after_reaching(first.soc_pct, 90)
        svc._wake.clear()
        await homeowner_sets(svc, {"battery": {"reserve_pct": 90}})
        assert svc._wake.is_set()  # told at once, not on the next poll
        p = await svc.step()
        assert p is not None and p.reason == "inputs"
        assert not below_after_reaching(p.soc_pct, 90)  # once charged, the evening keeps the new reserve
    finally:
        await store.close()


async def test_a_manual_override_is_planned_and_ends_on_time(tmp_path: Path) -> None:
    svc, store, _ = await service(tmp_path)
    try:
        override = make_override("charge", 2000, NOW + 1800, NOW, {"charge": 5000, "discharge": 5000})
        await svc.settings.change(lambda home: HomeSettings(home.sections, override))
        manual = await svc.step()
        assert manual is not None and manual.mode == "manual"
        assert (manual.setpoints[0].action, manual.setpoints[0].power_w) == ("charge", 2000)
        svc.clock.t = NOW + 1801  # type: ignore[attr-defined]
        back = await svc.step()
        assert back is not None and back.mode == "auto"
        assert svc.health()["mode"] == "auto"
    finally:
        await store.close()


async def test_the_forcing_gate_learns_the_forecast_errors_and_the_settled_days(tmp_path: Path) -> None:
    """The gate replays the one-slot-ahead forecasts on the metered slots and takes the last
    week's settled savings against self-consumption: three losing days make it force 8× less."""
    svc, store, _ = await service(tmp_path)
    start = int(NOW // 900) * 900
    rng = np.random.default_rng(18)
    slots = [{"ts": start - 900 * k, "import_wh": 0.0, "export_wh": 0.0, "charge_wh": 0.0, "discharge_wh": 0.0,
              "pv_wh": 0.0, "load_wh": float(100 + 200 * rng.random()), "samples": 90, "covered_s": 900.0,
              "complete": 1, "source": "test", "updated_at": 0.0} for k in range(1, 2 * 96 + 1)]
    try:
        await store.call(lambda s: s.db.table("energy_slots").insert_all(slots))  # type: ignore[arg-type]
        for day, saving in (("2024-05-28", -0.2), ("2024-05-30", -0.1), ("2024-05-31", -0.3)):
            await store.call(Store.save_settlements, [], day, {"savings_vs_self_consumption_eur": saving}, 0.0)
        assert await svc.step() is not None
        gate = svc.health()["forcing_gate"]
        assert gate["multiplier"] == 8.0  # each day's week sum below zero doubled it
        g = svc.gate
        # metered 400-1,200 W against a cold-start forecast of ~400 W; no PV against a clear-sky forecast
        assert g.observed == 2 * 96 and g.load_above_w > 100 and g.load_above_w > 5 * g.load_below_w
        assert g.pv_forecast_w > 0 and g.pv_below_w == pytest.approx(g.pv_forecast_w) and g.pv_above_w == 0
        svc.clock.t += 900  # type: ignore[attr-defined]
        await store.call(lambda s: s.db.table("energy_slots").insert_all(  # type: ignore[arg-type]
            [{**slots[0], "ts": start, "load_wh": 50.0}]))
        assert await svc.step() is not None
        assert svc.gate.observed == 2 * 96 + 1  # only the newly metered slot, not the week again
    finally:
        await store.close()


async def test_energy_stored_for_the_next_day_does_not_count_as_lost(tmp_path: Path) -> None:
    """Days that paid for grid charges still in the battery at midnight (1.1 kWh more than the
    self-consumption counterfactual's, worth 0.31 EUR at 300 EUR/MWh after the discharge loss)
    have not lost 0.3 EUR each: the gate does not force less."""
    svc, store, _ = await service(tmp_path)
    day = {"savings_vs_self_consumption_eur": -0.3, "stored_vs_self_consumption_wh": 1100.0,
           "slots": 96, "unpriced_slots": 0, "import_price_sum_eur_mwh": 96 * 300.0}
    try:
        for date_ in ("2024-05-29", "2024-05-30", "2024-05-31"):
            await store.call(Store.save_settlements, [], date_, day, 0.0)
        assert await svc.step() is not None
        assert svc.health()["forcing_gate"]["multiplier"] == 1.0
    finally:
        await store.close()


async def test_plans_nothing_while_the_clock_is_unsynchronised(tmp_path: Path) -> None:
    svc, store, published = await service(tmp_path)
    synchronised = False
    svc.clock_check = lambda now: synchronised
    try:
        assert await svc.step() is None
        assert svc.plan is None and svc.health()["clock_synchronised"] is False
        assert not published  # no command either
        synchronised = True  # NTP answered
        assert await svc.step() is not None
        assert svc.health()["clock_synchronised"] is True
    finally:
        await store.close()
