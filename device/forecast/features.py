"""Model inputs for one delivery day, built only from what is known at forecast time.

The forecast for delivery day T is made on T-1 (11:00 local in the backtest). Known then: the
prices of T-1 and earlier (published the day before), the day-ahead forecasts of load, solar and
wind for T, and, for DE-LU/AT, the EXAA auction result for T (about 10:20). The layout follows
LEAR (Lago et al. 2021): prices of T-1, T-2, T-3 and T-7 for all 24 hours; each exogenous series
for T, T-1 and T-7; day of week one-hot.

Prices are heavy-tailed (spikes, negative hours), so they enter models in the variance
stabilising ``asinh((p - median) / MAD)`` form (Uniejewski et al. 2018). :class:`AsinhScaler`
holds one such scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

HOURS = 24
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution → its standard deviation


@dataclass(frozen=True)
class FeatureSpec:
    """Which inputs a model takes, in which order (stored with the model file)."""

    price_lags: tuple[int, ...] = (1, 2, 3, 7)
    exog: tuple[tuple[str, tuple[int, ...]], ...] = ()
    price_like: frozenset[str] = field(default_factory=lambda: frozenset({"exaa"}))

    @property
    def exog_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.exog)

    @property
    def max_lag(self) -> int:
        return max([*self.price_lags, *(max(lags) for _, lags in self.exog)])

    def to_json(self) -> dict[str, object]:
        return {
            "price_lags": list(self.price_lags),
            "exog": [[name, list(lags)] for name, lags in self.exog],
            "price_like": sorted(self.price_like),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FeatureSpec:
        exog = data.get("exog", [])
        assert isinstance(exog, list)
        return cls(
            price_lags=tuple(int(x) for x in data.get("price_lags", [1, 2, 3, 7])),  # type: ignore[attr-defined]
            exog=tuple((str(name), tuple(int(x) for x in lags)) for name, lags in exog),
            price_like=frozenset(str(x) for x in data.get("price_like", ["exaa"])),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True)
class AsinhScaler:
    """``asinh((x - median) / MAD)``, the epftoolbox 'invariant' transform."""

    median: np.ndarray | float
    mad: np.ndarray | float

    @classmethod
    def fit(cls, values: np.ndarray, axis: int | None = None) -> AsinhScaler:
        median = np.nanmedian(values, axis=axis)
        mad = np.nanmedian(np.abs(values - median), axis=axis) * MAD_TO_SIGMA
        mad = np.where(np.asarray(mad) > 1e-3, mad, 1.0)  # flat windows: do not blow up
        return cls(median=median, mad=mad)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return np.arcsinh((values - self.median) / self.mad)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return np.sinh(values) * self.mad + self.median


def lagged(matrix: np.ndarray, targets: np.ndarray, lag: int) -> np.ndarray:
    """Rows ``targets - lag`` of ``matrix`` (NaN for rows outside it), shape (len(targets), 24)."""
    rows = targets - lag
    out = np.full((len(targets), matrix.shape[1]), np.nan)
    ok = (rows >= 0) & (rows < len(matrix))
    out[ok] = matrix[rows[ok]]
    return out


@dataclass(frozen=True)
class Blocks:
    """Raw (unscaled) input blocks for a set of target days, kept apart so each model scales them."""

    prices: np.ndarray  # (n, len(price_lags), 24)
    exog: dict[str, np.ndarray]  # name → (n, len(lags), 24)
    weekday: np.ndarray  # (n,) 0 = Monday


def build_blocks(
    spec: FeatureSpec,
    prices: np.ndarray,
    exog: Mapping[str, np.ndarray],
    targets: Sequence[int] | np.ndarray,
    first_weekday: int,
) -> Blocks:
    """Inputs for target day rows ``targets`` of day matrices aligned on the same first day.

    ``first_weekday`` is the weekday of row 0. Exogenous series missing from ``exog`` come back
    as NaN blocks; the caller decides whether a model can run without them.
    """
    t = np.asarray(targets, dtype=int)
    p = np.stack([lagged(prices, t, lag) for lag in spec.price_lags], axis=1)
    ex: dict[str, np.ndarray] = {}
    for name, lags in spec.exog:
        matrix = exog.get(name)
        if matrix is None:
            ex[name] = np.full((len(t), len(lags), HOURS), np.nan)
        else:
            ex[name] = np.stack([lagged(matrix, t, lag) for lag in lags], axis=1)
    return Blocks(prices=p, exog=ex, weekday=(t + first_weekday) % 7)


def default_spec(exog_names: Sequence[str]) -> FeatureSpec:
    """LEAR's layout: prices of D-1, D-2, D-3, D-7; exogenous of D, D-1, D-7; EXAA of D only."""
    return FeatureSpec(exog=tuple((name, (0,) if name == "exaa" else (0, 1, 7)) for name in sorted(exog_names)))


def weekday_onehot(weekday: np.ndarray) -> np.ndarray:
    return np.eye(7)[weekday]
