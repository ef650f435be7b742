"""The app's re-planning service: gathers prices, forecasts and the battery state, re-plans, hands
the plan to the controller and stores it.

Re-plans (see :func:`replan_reason`) at every slot boundary, when known prices or the price
forecast change, when the homeowner changes the mode or a demand-response event arrives, and
when the measured state of charge is ``planner.soc_replan_pct`` off the plan. Inputs come from
the store: known day-ahead prices (``prices``), the newest price forecast (``forecasts``) beyond
them, and four weeks of metered quarter-hours (``energy_slots``) for the load and PV forecasts.
Without any price the plan falls back to self-consumption and says so.

Demand-response events arrive as ``cmd/dr_event`` ``{"id", "start", "end", "cap_w"}`` (epoch s or
ISO-8601 Z) and are answered on ``cmd/result``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import structlog
from numpy.typing import NDArray

from common.crash import crash_point
from device.accounting import CRASH_VARIABLE, day_result_eur
from device.commands import MAX_AGE_S, BadCommand, caller_id, number, parse_command, timestamp
from device.clock import SYSTEM_CLOCK, Clock, within
from device.clock_sync import clock_check, clock_plausible
from device.config import Config
from device import schedules
from device.controller import Controller
from device.forecast.load import WEEK, cold_start_scale, forecast_load, standard_profile_w
from device.forecast.pv import clear_sky, forecast_pv
from device.home.effective import EffectiveSettings
from device.home.settings import Override
from device.mqtt import MqttSession, NotConnected, Topics
from device.plan.lp import Solver
from device.plan.model import (
    SLOT_S,
    Battery,
    DemandResponse,
    Inputs,
    ModeRequest,
    Plan,
    Rules,
)
from device.plan.robust import ERROR_WINDOW_SLOTS, FEEDBACK_DAYS, ForcingGate
from device.plan.schedule import plan
from device.prices.tariff import Tariff
from device.store import AsyncStore, Store

log = structlog.get_logger(__name__)
HISTORY_SLOTS = 4 * 7 * 96 + 96  # four weeks and a day of metered slots
MAX_SLOTS = 192  # 48 h: known prices reach at most ~35 h ahead
Publish = Callable[..., Awaitable[None]]


def configured_mode(cfg: Config) -> ModeRequest:
    """The standing mode from the configuration (manual needs an end time, so it means auto)."""
    mode = cfg.planner.mode if cfg.planner.mode != "manual" else "auto"
    return ModeRequest(mode, peak_shaving_cap_w=cfg.planner.peak_shaving_cap_w)


def requested_mode(cfg: Config, override: Override | None) -> ModeRequest:
    """What the homeowner asked for: a running manual override, else the standing mode."""
    if override is None:
        return configured_mode(cfg)
    return ModeRequest("manual", action=override.action, power_w=override.power_w, until=override.until)


def replan_reason(
    now: float,
    last: Plan | None,
    last_inputs_key: tuple[Any, ...] | None,
    inputs_key: tuple[Any, ...],
    soc_pct: float | None,
    soc_tolerance_pct: float,
) -> str | None:
    """Why a new plan is needed now, or None. ``inputs_key`` fingerprints prices, forecast and
    settings (mode, events); it changing is a trigger by itself."""
    if last is None:
        return "start"
    slot = int(now // SLOT_S) * SLOT_S
    if int(last.ts[0]) != slot:
        return "slot"
    if inputs_key != last_inputs_key:
        return "inputs"
    planned = last.soc_at(now)
    if soc_pct is not None and planned is not None and abs(soc_pct - planned) > soc_tolerance_pct:
        return f"soc off plan ({soc_pct:.1f} % vs {planned:.1f} %)"
    return None


def _per_slot(points: list[dict[str, Any]], key: str, start: int, n: int) -> np.ndarray:
    """Points (ts, value, optional resolution_s) → one value per quarter-hour from ``start``."""
    out = np.full(n, np.nan)
    for p in points:
        step = int(p.get("resolution_s") or SLOT_S)
        for k in range(max(step // SLOT_S, 1)):
            i = (int(p["ts"]) + k * SLOT_S - start) // SLOT_S
            if 0 <= i < n:
                out[i] = float(p[key])
    return out


DR_AHEAD_MAX_S = 7 * 86400  # an event may be announced up to a week ahead …
DR_LENGTH_MAX_S = 2 * 86400  # … and last up to two days
DR_CAP_MAX_W = 1_000_000  # a cap above any home's connection is a mistake, not a cap


def _check_window(event: DemandResponse, now: float) -> None:
    """A demand-response event the planner can act on: not over, not far off, not endless."""
    if event.end <= now:
        raise BadCommand(f"end {event.end:.0f} (epoch s) is already past, now is {now:.0f}")
    if event.start > now + DR_AHEAD_MAX_S:
        raise BadCommand(f"start {event.start:.0f} (epoch s) is more than {DR_AHEAD_MAX_S // 86400} days ahead")
    if event.end - event.start > DR_LENGTH_MAX_S:
        raise BadCommand(f"the event lasts {(event.end - event.start) / 3600:.1f} h; "
                         f"at most {DR_LENGTH_MAX_S // 3600} h are allowed")


class PlanningService:
    """Keeps a current plan; ``run`` loops until cancelled.

    Reads the effective settings (mode, reserve, tariff, a manual override) each time it plans,
    and re-plans at once when the homeowner changes them. ``mode`` pins the mode (``nattery plan
    --mode``) in place of the homeowner's.
    """

    def __init__(
        self,
        settings: EffectiveSettings,
        store: AsyncStore,
        controller: Controller,
        *,
        publish: Publish | None = None,
        clock: Clock = SYSTEM_CLOCK,
        mode: ModeRequest | None = None,
        clock_check: Callable[[float], bool] = clock_plausible,
    ) -> None:
        self.settings = settings
        self.clock_check = clock_check
        self.clock_synchronised: bool | None = None
        self.store = store
        self.controller = controller
        self.publish = publish
        self.clock = clock
        self.mode = mode
        self.events: list[DemandResponse] = []
        self.topics = Topics(settings.config.mqtt.prefix, settings.config.device.id)
        self.plan: Plan | None = None
        self._key: tuple[Any, ...] | None = None
        self._solver = Solver()
        self.gate = ForcingGate(prior_load_w=settings.config.planner.annual_load_kwh * 1000 / 8760)
        self._errors_until = 0  # newest metered slot whose forecast error the gate has seen
        self._wake = asyncio.Event()
        self.replans = 0
        settings.subscribe(self._wake.set)

    @property
    def cfg(self) -> Config:
        return self.settings.config

    def request(self, now: float) -> ModeRequest:
        """The mode to plan in at ``now``."""
        return self.mode or requested_mode(self.cfg, self.settings.override(now))

    def add_event(self, event: DemandResponse) -> None:
        self.events = [e for e in self.events if e.end > self.clock.time()] + [event]
        self._wake.set()

    async def on_message(self, topic: str, payload: bytes) -> None:
        """Handle ``cmd/dr_event``: validate, adopt, answer on ``cmd/result``."""
        await self._dr_event(topic, payload, retained=False)

    async def on_retained(self, topic: str, payload: bytes) -> None:
        """A retained ``cmd/dr_event`` is refused and answered, never adopted at start-up."""
        if payload:
            await self._dr_event(topic, payload, retained=True)

    async def _dr_event(self, topic: str, payload: bytes, *, retained: bool) -> None:
        if topic != self.topics.cmd("dr_event") or not payload:
            return
        command_id = caller_id(payload)
        reply: dict[str, Any]
        try:
            message = parse_command(payload, now=self.clock.time(), retained=retained,
                                    max_age_s=MAX_AGE_S * self.clock.speed)
            event = DemandResponse(
                start=timestamp(message.get("start"), "start"), end=timestamp(message.get("end"), "end"),
                cap_w=number(message.get("cap_w"), "cap_w (watts)", minimum=0), id=command_id or "",
            )
            if event.end <= event.start:
                raise BadCommand(f"end must be after start, got start={event.start} end={event.end}")
            if event.cap_w > DR_CAP_MAX_W:
                raise BadCommand(f"cap_w (watts) must be at most {DR_CAP_MAX_W} (1 MW), got {event.cap_w:g}")
            _check_window(event, self.clock.time())
            self.add_event(event)
            reply = {"id": command_id, "ok": True}
        except BadCommand as exc:
            reply = {"id": command_id, "ok": False, "error": f"dr_event: {exc}"}
        if self.publish is not None:
            with contextlib.suppress(NotConnected):
                await self.publish(self.topics.cmd_result, reply, qos=1)

    # --- loop -----------------------------------------------------------------------------
    async def run(self, telemetry_wait_s: float = 30.0) -> None:
        # The first plan should start from the measured SoC: give the bridge a moment.
        deadline = self.clock.monotonic() + telemetry_wait_s
        while self.controller.telemetry is None and self.clock.monotonic() < deadline:
            await self.clock.sleep(0.2)
        while True:
            self._wake.clear()
            await self.step()
            now = self.clock.time()
            delay = min(SLOT_S - now % SLOT_S + 1.0, 60.0)  # boundary, or a minute for SoC checks
            override = self.settings.override(now)
            if override is not None:  # back to the standing mode as soon as it ends
                delay = min(delay, max(override.until - now, 0.0) + 0.01)
            with contextlib.suppress(TimeoutError):
                await within(self.clock, delay, self._wake.wait())

    async def step(self) -> Plan | None:
        """Re-plan if needed; returns the new plan or None. Nothing is planned while the clock
        fails :func:`device.clock_sync.clock_plausible` (the controller keeps what it has; with
        no plan the bridge's watchdog holds self-consumption)."""
        now = self.clock.time()
        synchronised = self.clock_check(now)
        if synchronised != self.clock_synchronised:
            (log.info if synchronised else log.error)("planner_clock", synchronised=synchronised, now=now)
        self.clock_synchronised = synchronised
        if not synchronised:
            return None
        start = int(now // SLOT_S) * SLOT_S
        cfg = self.cfg
        gathered = await self.store.call(_gather, cfg, start, MAX_SLOTS, HISTORY_SLOTS)
        # The effective configuration is part of the inputs: a new reserve or tariff re-plans.
        key = (gathered["prices_key"], gathered["forecast_key"], self.request(now), tuple(self.events), cfg)
        telemetry = self.controller.telemetry or {}
        soc = telemetry.get("soc_pct")
        reason = replan_reason(now, self.plan, self._key, key, soc, cfg.planner.soc_replan_pct)
        if reason is None:
            return None
        soc_now = float(soc) if soc is not None else (
            self.plan.soc_at(now) if self.plan is not None and self.plan.soc_at(now) is not None
            else Battery.from_config(cfg).floor_pct
        )
        await asyncio.to_thread(self.learn, cfg, gathered, start)
        result = await self.compute(gathered, now, float(soc_now or 0.0), reason)
        self.plan, self._key = result, key
        self.replans += 1
        await self.store.call(Store.insert_plan, result.created_at, reason, result.to_json())
        hour, minute = cfg.market.schedule_cutoff.split(":")
        await self.store.call(schedules.commit, result.to_json(), now, (int(hour), int(minute)),
                              schedules.Limits.from_config(cfg))
        crash_point(CRASH_VARIABLE, "plan_stored")
        await self.controller.set_plan(result)
        log.info("replanned", reason=reason, slots=len(result.ts), solve_ms=round(result.solve_ms, 2),
                 first=result.setpoints[0].action, compromises=result.compromises)
        return result

    async def compute(self, gathered: dict[str, Any] | None, now: float, soc_pct: float, reason: str) -> Plan:
        """The plan for ``now`` from the store's data (gathered when not given); changes nothing."""
        start = int(now // SLOT_S) * SLOT_S
        cfg = self.cfg
        if gathered is None:
            gathered = await self.store.call(_gather, cfg, start, MAX_SLOTS, HISTORY_SLOTS)
        inputs, note = self._inputs(cfg, gathered, start, MAX_SLOTS, now, soc_pct)
        request = self.request(now) if note is None else ModeRequest("self_consumption")
        result = await asyncio.to_thread(
            plan, inputs, Battery.from_config(cfg), Rules.from_config(cfg), request, tuple(self.events), reason,
            self._solver, self.gate if cfg.planner.forcing_gate else None,
        )
        if note:
            result.compromises.append(note)
        return result

    def learn(self, cfg: Config, gathered: dict[str, Any], start: int) -> None:
        """Teach the forcing gate: the one-slot-ahead load and PV forecasts replayed on each newly
        metered slot (at most the last week) against the meter, and the settled days' savings
        against self-consumption (:mod:`device.plan.robust`)."""
        self.gate.replay_days(gathered["savings_days"])
        load, pv = gathered["load_w"], gathered["pv_w"]
        hist_start = start - HISTORY_SLOTS * SLOT_S
        grid = hist_start + SLOT_S * np.arange(HISTORY_SLOTS, dtype=np.int64)
        first = max(HISTORY_SLOTS - ERROR_WINDOW_SLOTS, (self._errors_until - hist_start) // SLOT_S + 1, 0)
        metered = [k for k in range(first, HISTORY_SLOTS) if np.isfinite(load[k]) and np.isfinite(pv[k])]
        if not metered:
            return
        fallback = standard_profile_w(grid, cfg.planner.annual_load_kwh, cfg.device.timezone)
        clearsky = _plant_clear_sky(cfg, grid)
        for k in metered:
            load_f = forecast_load(load, k, 1, fallback[k:k + 1])[0]
            pv_f = forecast_pv(pv, clearsky, k, 1, cfg.planner.pv_peak_w)[0]
            self.gate.observe_slot(float(load_f), float(pv_f), float(load[k]), float(pv[k]))
        self._errors_until = int(grid[metered[-1]])

    @staticmethod
    def _inputs(
        cfg: Config, g: dict[str, Any], start: int, n: int, now: float, soc: float
    ) -> tuple[Inputs, str | None]:
        # All known prices, then the forecast up to at least planner.horizon_h ahead.
        spot = g["spot"]
        known_gaps = np.flatnonzero(~np.isfinite(spot))
        known_len = int(known_gaps[0]) if known_gaps.size else n
        wanted = max(known_len, min(int(cfg.planner.horizon_h * 3600 // SLOT_S), n))
        spot = np.where(np.isfinite(spot), spot, g["forecast"])[:wanted]
        gaps = np.flatnonzero(~np.isfinite(spot))
        length = int(gaps[0]) if gaps.size else wanted
        note = None
        if length == 0:
            note = "no price for the current slot: self-consumption until prices arrive"
            spot = np.zeros(96)
            length = 96
        ts = start + SLOT_S * np.arange(length, dtype=np.int64)
        hist_start = start - HISTORY_SLOTS * SLOT_S
        grid = hist_start + SLOT_S * np.arange(HISTORY_SLOTS + length, dtype=np.int64)
        load_hist, pv_hist = g["load_w"], g["pv_w"]
        fallback = standard_profile_w(ts, cfg.planner.annual_load_kwh, cfg.device.timezone)
        if not np.isfinite(load_hist[:HISTORY_SLOTS - WEEK]).any():  # no week of history: the measured level
            recent = grid[HISTORY_SLOTS - WEEK:HISTORY_SLOTS]
            profile = standard_profile_w(recent, cfg.planner.annual_load_kwh, cfg.device.timezone)
            fallback = fallback * cold_start_scale(load_hist[HISTORY_SLOTS - WEEK:], profile)
        load = forecast_load(np.r_[load_hist, np.full(length, np.nan)], HISTORY_SLOTS, length, fallback)
        clearsky = _plant_clear_sky(cfg, grid)
        pv = forecast_pv(np.r_[pv_hist, np.full(length, np.nan)], clearsky, HISTORY_SLOTS, length,
                         cfg.planner.pv_peak_w)
        spot = spot[:length]
        tariff = Tariff(cfg.tariff, cfg.device.timezone)
        inputs = Inputs(ts, tariff.import_price(ts, spot), tariff.export_value(ts, spot), load, pv,
                        soc, first_slot_s=start + SLOT_S - now)
        return inputs, note

    def health(self) -> dict[str, Any]:
        p = self.plan
        return {
            "mode": self.request(self.clock.time()).mode,
            "replans": self.replans,
            "plan_created_at": None if p is None else p.created_at,
            "plan_reason": None if p is None else p.reason,
            "solve_ms": None if p is None else round(p.solve_ms, 2),
            "compromises": [] if p is None else p.compromises,
            "dr_events": len(self.events),
            "clock_synchronised": self.clock_synchronised,
            "forcing_gate": self.gate.to_json(),
        }


def _gather(store: Store, cfg: Config, start: int, n: int, history: int) -> dict[str, Any]:
    """One store round trip: known prices, the price forecast, metered history (W) and the last
    week's settled savings against self-consumption (oldest first)."""
    zone = cfg.prices.zone
    end = start + n * SLOT_S
    prices = store.price_points(zone, start - 3600, end)
    forecast = store.latest_forecast("price", start - 3600, end)
    hist_start = start - history * SLOT_S
    slots = store.energy_slots(hist_start, start)
    load = np.full(history, np.nan)
    pv = np.full(history, np.nan)
    for s in slots:
        i = (int(s["ts"]) - hist_start) // SLOT_S
        if 0 <= i < history and s.get("complete"):
            load[i] = s["load_wh"] * 3600 / SLOT_S
            pv[i] = s["pv_wh"] * 3600 / SLOT_S
    return {
        "spot": _per_slot(prices, "eur_mwh", start, n),
        "forecast": _hold_hours(_per_slot(forecast, "value", start, n)),
        "prices_key": (len(prices), prices[-1]["ts"] if prices else None),
        "forecast_key": (len(forecast), forecast[-1]["ts"] if forecast else None,
                         forecast[0]["value"] if forecast else None),
        "load_w": load,
        "pv_w": pv,
        "savings_days": _savings_days(store, start, cfg.device.timezone, Battery.from_config(cfg).discharge_efficiency),
    }


def _savings_days(store: Store, start: int, timezone: str, discharge_efficiency: float) -> list[float]:
    """What the battery earned against self-consumption (EUR, stored energy included:
    :func:`device.accounting.day_result_eur`) on the settled local days of the last week before
    ``start``'s day."""
    today = datetime.fromtimestamp(start, UTC).astimezone(ZoneInfo(timezone)).date()
    out = []
    for back in range(FEEDBACK_DAYS, 0, -1):
        totals = store.settlement_day((today - timedelta(days=back)).isoformat())
        result = None if totals is None else day_result_eur(totals, discharge_efficiency)
        if result is not None:
            out.append(result)
    return out


def _hold_hours(values: np.ndarray) -> np.ndarray:
    """A forecast stored per hour start covers its hour: fill up to three quarter-hours after each value."""
    out = values.copy()
    last = -10
    for i in range(len(values)):
        if np.isfinite(values[i]):
            last = i
        elif i - last <= 3:
            out[i] = values[last]
    return out


class Planning:
    """The planner, controller and daily settlement as one app job, on the app's MQTT session.

    Wire into the app: ``jobs["planning"] = Planning(settings, store, session).run`` and
    ``health["planning"] = planning`` (it has ``health()``); the app runs the session.
    """

    def __init__(self, settings: EffectiveSettings, store: AsyncStore, session: MqttSession,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        cfg = settings.config
        topics = Topics(cfg.mqtt.prefix, cfg.device.id)
        self.settings = settings
        self.store = store
        self.session = session
        self.clock = clock
        self.controller = Controller(topics, session.publish_json, watchdog_s=cfg.bridge.watchdog_s, clock=clock)
        self.service = PlanningService(settings, store, self.controller, publish=session.publish_json, clock=clock,
                                       clock_check=clock_check(cfg.device.clock_check))
        for topic in (topics.cmd_result, topics.telemetry):
            session.route(topic, self.controller.on_message)
        session.route(topics.cmd("dr_event"), self.service.on_message, retained=self.service.on_retained)

    async def run(self) -> None:
        from device.accounting import settlement_loop
        from device.edi import export_loop

        async with asyncio.TaskGroup() as group:
            await self.session.connected.wait()
            group.create_task(self.controller.run(), name="controller")
            group.create_task(self.service.run(), name="planner")
            group.create_task(settlement_loop(self.store, self.settings, clock=self.clock.time, sleep=self.clock.sleep),
                              name="settlement")
            group.create_task(export_loop(self.store, self.settings, clock=self.clock.time, sleep=self.clock.sleep),
                              name="mscons_export")

    def health(self) -> dict[str, Any]:
        return {"planner": self.service.health(), "controller": self.controller.health()}


async def preview(
    settings: EffectiveSettings, store: AsyncStore, soc_pct: float | None = None, mode: str | None = None,
    now: float | None = None,
) -> Plan:
    """``nattery plan``: the plan the planner would make now from the stored data and the
    effective settings (the homeowner's mode, reserve and tariff, a running manual override).

    Sends no command and stores nothing. ``mode`` plans in that mode instead; the SoC defaults
    to the newest reading's.
    """
    async def nowhere(topic: str, *args: Any, **kwargs: Any) -> None:
        raise NotConnected(f"{topic}: preview sends nothing")

    cfg = settings.config
    pinned = None if mode is None else ModeRequest(mode, peak_shaving_cap_w=cfg.planner.peak_shaving_cap_w)
    svc = PlanningService(settings, store, Controller(Topics(cfg.mqtt.prefix, cfg.device.id), nowhere), mode=pinned)
    if soc_pct is None:
        latest = await store.call(Store.latest_reading)
        soc_pct = (latest or {}).get("roles", {}).get("soc_pct")
    soc = Battery.from_config(cfg).floor_pct if soc_pct is None else float(soc_pct)
    return await svc.compute(None, time.time() if now is None else now, soc, "preview")


def _plant_clear_sky(cfg: Config, grid: NDArray[np.int64]) -> NDArray[np.float64]:
    """Clear-sky irradiance on the configured plant's plane at each slot of ``grid``."""
    return clear_sky(grid, cfg.device.latitude, cfg.device.longitude, cfg.planner.pv_tilt_deg, cfg.planner.pv_azimuth_deg)
