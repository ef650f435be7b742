"""The price inside the hour: quarter-hour forecasts from an hourly one.

Since delivery day 2025-10-01 the day-ahead market clears quarter-hours. Within an hour the four
prices follow the hourly curve around them: on a rising hour the first quarter is cheaper and the
last dearer than the hour (more so than a straight ramp), plus a pattern per hour of the day
(solar noon, the evening peak). Per quarter ``q`` of local hour ``h``, with ``p`` the hourly
values of the day (and the neighbouring days' edge hours)::

    deviation[h, q] = a[q] · (p[h] − p[h−1]) + b[q] · (p[h+1] − p[h]) + c[q, h]

and the four deviations of an hour sum to zero, so the hourly forecast stays the hour's mean.

Where the coefficients come from: the *prior* is the shipped model's (fitted by
``tools/train_forecaster.py`` on the quarter-hour days of its training data), or, without one, a
straight ramp through the hour centres. On the device :func:`fit` refits them on the last
``window`` days of quarter-hour prices it has stored, pulled towards the prior as much as the
prior's days weigh against the stored ones, so the shape follows what the device sees as
quarter-hour history accumulates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HOURS = 24
QUARTERS = 4
SLOPES = 2  # left and right slope of the hourly curve
PRIOR_DAYS_MAX = 28.0  # a prior weighs at most four weeks of data: the device's own take over


@dataclass(frozen=True)
class IntraHourModel:
    """``coef[q]`` = (a, b, c[0..23]) for quarter ``q``; ``days`` = how many days it was fitted on
    (its weight when blended with newer data)."""

    coef: np.ndarray  # (4, 2 + 24)
    days: float

    def shape(self, hourly: np.ndarray, before: float = np.nan, after: float = np.nan) -> np.ndarray:
        """Quarter-hour deviations from the hour, shape (24, 4), for the hourly values of one day.

        ``before``/``after``: the previous day's last and the next day's first hour (NaN when
        unknown: the edge hour then takes its inner slope on both sides).
        """
        x = features(np.asarray(hourly, dtype=float)[None, :], np.array([before]), np.array([after]))[0]
        dev = np.einsum("hk,qk->hq", x, self.coef)
        return np.asarray(dev - dev.mean(axis=1, keepdims=True))

    def quarters(self, hourly: np.ndarray, before: float = np.nan, after: float = np.nan) -> np.ndarray:
        """The quarter-hour forecast (24, 4): each hour's value plus its shape."""
        return np.asarray(hourly, dtype=float)[:, None] + self.shape(hourly, before, after)

    def to_json(self) -> dict[str, Any]:
        return {"coef": np.round(self.coef, 5).tolist(), "days": self.days}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IntraHourModel:
        coef = np.asarray(data["coef"], dtype=float)
        if coef.shape != (QUARTERS, SLOPES + HOURS):
            raise ValueError(f"intrahour.coef: got shape {coef.shape}, allowed: ({QUARTERS}, {SLOPES + HOURS})")
        return cls(coef=coef, days=float(data["days"]))


def ramp(days: float = 7.0) -> IntraHourModel:
    """The prior without quarter-hour data: a straight line through the hour centres (quarter
    midpoints at −3/8, −1/8, +1/8, +3/8 of an hour), made mean-free per hour."""
    coef = np.zeros((QUARTERS, SLOPES + HOURS))
    coef[:, :SLOPES] = [[-1 / 4, -1 / 8], [0.0, -1 / 8], [1 / 8, 0.0], [1 / 8, 1 / 4]]
    return IntraHourModel(coef=coef, days=days)


def features(hourly: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per day and hour: left slope, right slope, one-hot hour of day; shape (n, 24, 26)."""
    n = len(hourly)
    padded = np.column_stack([before, hourly, after])
    left = padded[:, 1:-1] - padded[:, :-2]
    right = padded[:, 2:] - padded[:, 1:-1]
    left = np.where(np.isfinite(left), left, right)  # an unknown neighbour: mirror the inner slope
    right = np.where(np.isfinite(right), right, left)
    onehot = np.broadcast_to(np.eye(HOURS), (n, HOURS, HOURS))
    return np.concatenate([left[..., None], right[..., None], onehot], axis=2)


def fit(cells: np.ndarray, prior: IntraHourModel, window: int = 56) -> IntraHourModel:
    """Refit on the last ``window`` days of quarter-hour cells (n, 24, 4), pulled towards ``prior``.

    Ridge regression towards the prior's coefficients, the prior counting as ``prior.days`` days
    of data (at most ``PRIOR_DAYS_MAX``): with a few days of quarter-hours the prior dominates,
    with weeks the data. Only complete hours are used; without any the prior is returned unchanged.
    """
    recent = cells[-window:]
    hourly = recent.mean(axis=2)  # NaN unless all four quarters are known
    days = int(np.isfinite(hourly).any(axis=1).sum())
    if days == 0:
        return prior
    before = np.concatenate([[np.nan], hourly[:-1, -1]])
    after = np.concatenate([hourly[1:, 0], [np.nan]])
    x = features(hourly, before, after).reshape(-1, SLOPES + HOURS)
    y = (recent - hourly[..., None]).reshape(-1, QUARTERS)
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    x, y = x[ok], y[ok]
    per_day = np.concatenate([(x[:, :SLOPES] ** 2).sum(axis=0) / days, np.ones(HOURS)])  # one x² of a day
    weight = min(prior.days, PRIOR_DAYS_MAX)
    pull = np.diag(weight * np.maximum(per_day, 1e-6))
    coef = np.linalg.solve(x.T @ x + pull, x.T @ y + pull @ prior.coef.T).T
    return IntraHourModel(coef=coef, days=weight + days)
