"""The on-device price forecast: LiteRT network + daily recalibrated linear model, or a fallback.

``PriceForecaster.predict(history, now)`` returns a value for every slot from the first day
without complete known prices until at least ``horizon_h`` hours after ``now``, in the market's
resolution. The day models are hourly; in a quarter-hour market each quarter-hour is its hour's
forecast plus the intra-hour shape of :mod:`device.forecast.intrahour`, refitted on the stored
quarter-hour prices at every forecast (the shipped model's shape, or a ramp, as the prior).

Per delivery day, what runs depends on what is there:

========================  =====================================================================
``blend``                 network and linear model both ran: ``w·linear + (1-w)·network``
                          (``w`` = ``lear_weight`` from the model metadata, 0.5 as shipped)
``network``               model file present, too little stored history for the linear model
``linear``                no model file (or it failed to load), enough history (≥ 42 days)
``fallback``              neither: the naive blend of :mod:`device.forecast.fallback`
========================  =====================================================================

Days after the first are forecast recursively (yesterday's forecast stands in for its prices)
and without the exogenous series nobody has published yet; the network sees them flagged absent
and the linear model is fitted without them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import structlog

from device.forecast import fallback, intrahour, lear
from device.forecast.daily import expand_day
from device.forecast.features import FeatureSpec, build_blocks, default_spec
from device.forecast.history import MarketHistory
from device.forecast.network import (
    ModelMeta,
    Network,
    load_meta,
    network_inputs,
    recent_price_scale,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DayForecast:
    day: date
    values: np.ndarray  # (24,) EUR/MWh per local hour
    method: str  # blend | network | linear | fallback
    network_ms: float = 0.0
    linear_ms: float = 0.0
    network: np.ndarray | None = None  # the two halves, where they ran (for the backtest)
    linear: np.ndarray | None = None


@dataclass(frozen=True)
class PriceForecast:
    """Slots ``(utc_epoch_s, EUR/MWh)`` in order (each lasting until the next), and how each day
    was made."""

    made_at: int
    slots: list[tuple[int, float]]
    days: list[DayForecast] = field(default_factory=list)

    @property
    def methods(self) -> dict[str, str]:
        return {d.day.isoformat(): d.method for d in self.days}


class PriceForecaster:
    """Loads the model once; ``predict`` is CPU work (run it in ``asyncio.to_thread``)."""

    def __init__(
        self, model_path: Path | None, tz: str = "Europe/Berlin",
        lear_windows: tuple[int, ...] = lear.DEFAULT_WINDOWS,
    ) -> None:
        self.tz = tz
        self.lear_windows = lear_windows
        self.network: Network | None = None
        self.meta: ModelMeta | None = None
        if model_path is not None:
            try:
                self.meta = load_meta(model_path)
                self.network = Network(model_path)
            except (OSError, ValueError) as exc:
                log.warning("price_model_unavailable", path=str(model_path), error=str(exc))
                self.meta, self.network = None, None

    @property
    def intrahour_prior(self) -> intrahour.IntraHourModel:
        """The model's intra-hour shape (fitted in training), else a straight ramp."""
        return self.meta.intrahour if self.meta is not None and self.meta.intrahour is not None else intrahour.ramp()

    def intrahour_for(self, history: MarketHistory, before_row: int) -> intrahour.IntraHourModel:
        """The intra-hour shape fitted on the quarter-hour prices of the days before ``before_row``."""
        if history.quarters is None:
            return self.intrahour_prior
        return intrahour.fit(history.quarters[:before_row], self.intrahour_prior)

    def spec_for(self, history: MarketHistory) -> FeatureSpec:
        return self.meta.spec if self.meta is not None else default_spec(list(history.exog))

    def forecast_day(self, history: MarketHistory, target: int) -> DayForecast:
        """Forecast row ``target``; ``history`` holds everything known (later rows are ignored)."""
        spec = self.spec_for(history)
        day = history.day(target)
        net_values, net_ms = None, 0.0
        if self.network is not None and self.meta is not None:
            started = time.perf_counter()
            rows = np.array([target])
            blocks = build_blocks(spec, history.prices, history.exog, rows, history.first_weekday)
            scale = recent_price_scale(history.prices, rows, self.meta.price_window)
            out = self.network.run(network_inputs(self.meta, blocks, scale))
            net_values = scale.inverse(out)[0]
            net_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        groups = [name for name, lags in spec.exog if _present(history, name, target, lags)]
        linear = lear.forecast_day(spec, history, target, groups, self.lear_windows)
        linear_ms = (time.perf_counter() - started) * 1000
        lin_values = None if linear is None else linear.values
        if net_values is not None and lin_values is not None and self.meta is not None:
            w = self.meta.lear_weight
            values, method = w * lin_values + (1 - w) * net_values, "blend"
        elif net_values is not None:
            values, method = net_values, "network"
        elif lin_values is not None:
            values, method = lin_values, "linear"
        else:
            naive = fallback.naive_blend(history.prices, target, (target + history.first_weekday) % 7)
            if naive is None:
                raise ValueError(f"no price history before {day}: nothing to forecast from")
            values, method = naive, "fallback"
        return DayForecast(day, values, method, net_ms, linear_ms, net_values, lin_values)

    def predict(
        self, history: MarketHistory, now: datetime, horizon_h: float = 48.0,
        resolution_s: int | Callable[[date], int] = 900,
    ) -> PriceForecast:
        """Every slot after the last complete known day up to ``now + horizon_h`` (at least),
        each quarter-hour (900) or hour (3600) its own value; ``resolution_s`` may be a function
        of the delivery day (the market changed resolution on 2025-10-01)."""
        resolution_of = resolution_s if callable(resolution_s) else (lambda _: resolution_s)
        first = history.last_complete_price_row() + 1
        if first <= 0:
            raise ValueError("no complete day of prices in the history: nothing to forecast from")
        end = (now.astimezone(ZoneInfo(self.tz)) + timedelta(hours=horizon_h)).date()
        last = max(history.row(end), first)
        work = history.extended(max(0, last + 1 - len(history.days)))
        days: list[DayForecast] = []
        for target in range(first, last + 1):
            result = self.forecast_day(work, target)
            work.prices[target] = result.values  # recursive: later days build on this one
            days.append(result)
        shape: intrahour.IntraHourModel | None = None
        slots: list[tuple[int, float]] = []
        for target, result in zip(range(first, last + 1), days, strict=True):
            resolution = resolution_of(result.day)
            if resolution not in (900, 3600):
                raise ValueError(f"resolution_s: got {resolution} for {result.day}, allowed: 900, 3600")
            values = result.values
            if resolution == 900:
                shape = shape or self.intrahour_for(history, first)
                after = work.prices[target + 1, 0] if target < last else np.nan
                values = shape.quarters(values, work.prices[target - 1, -1], after)
            slots.extend(expand_day(result.day, values, self.tz, resolution))
        return PriceForecast(made_at=int(now.timestamp()), slots=slots, days=days)


def _present(history: MarketHistory, name: str, target: int, lags: tuple[int, ...]) -> bool:
    matrix = history.exog.get(name)
    if matrix is None:
        return False
    rows = [target - lag for lag in lags]
    return all(0 <= r < len(matrix) and bool(np.isfinite(matrix[r]).all()) for r in rows)
