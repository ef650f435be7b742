from __future__ import annotations

import numpy as np
import pytest

from device.forecast import intrahour

rng = np.random.default_rng(3)


def synthetic_days(n: int, a: float, b: float, noon: float) -> np.ndarray:
    """Quarter-hour cells (n, 24, 4) whose shape is ``a``·left slope + ``b``·right slope per quarter
    (ramp-like, stronger than a straight line) plus a fixed noon pattern."""
    hourly = 80 + 30 * np.sin(np.arange(24 * n) / 24 * 2 * np.pi * 2) + rng.normal(0, 10, 24 * n)
    padded = np.concatenate([[hourly[0]], hourly, [hourly[-1]]])
    left, right = hourly - padded[:-2], padded[2:] - hourly
    weights = np.array([-a, -a / 3, a / 3, a])
    dev = left[:, None] * weights + right[:, None] * weights * b / a
    dev[np.arange(24 * n) % 24 == 12] += [noon, -noon, -noon, noon]
    dev -= dev.mean(axis=1, keepdims=True)
    return (hourly[:, None] + dev).reshape(n, 24, 4)


def test_ramp_prior_draws_a_line_through_the_hour_centres_keeping_the_hourly_mean() -> None:
    quarters = intrahour.ramp().quarters(np.array([0.0, 8.0, 16.0] + [24.0] * 21))
    assert quarters[1] == pytest.approx([5.0, 7.0, 9.0, 11.0])  # rising by 8 per hour: 2 per quarter
    assert quarters.mean(axis=1) == pytest.approx([0.0, 8.0, 16.0] + [24.0] * 21)


def test_fit_learns_the_shape_and_improves_as_quarter_hour_days_accumulate() -> None:
    cells = synthetic_days(60, a=0.6, b=0.4, noon=5.0)
    hourly, actual = cells[-1].mean(axis=1), cells[-1]
    before, after = cells[-2, -1].mean(), np.nan
    errors = []
    for days in (0, 2, 7, 28):
        model = intrahour.fit(cells[-1 - days : -1], intrahour.ramp())
        errors.append(float(np.abs(model.quarters(hourly, before, after) - actual).mean()))
    assert errors[0] > errors[1] > errors[2] > errors[3]
    assert errors[3] < 0.25 * errors[0]
    model = intrahour.fit(cells[:-1], intrahour.ramp())
    assert model.shape(hourly, before)[12] == pytest.approx(actual[12] - actual[12].mean(), abs=1.0)


def test_hourly_history_leaves_the_prior_and_the_prior_round_trips_through_json() -> None:
    hourly_only = np.full((10, 24, 4), np.nan)
    hourly_only[:, :, 0] = 50.0
    prior = intrahour.fit(synthetic_days(20, 0.5, 0.5, 2.0), intrahour.ramp())
    assert intrahour.fit(hourly_only, prior) is prior
    again = intrahour.IntraHourModel.from_json(prior.to_json())
    assert np.allclose(again.coef, prior.coef, atol=1e-5) and again.days == prior.days
    with pytest.raises(ValueError, match=r"intrahour.coef: got shape \(4, 3\)"):
        intrahour.IntraHourModel.from_json({"coef": [[0, 0, 0]] * 4, "days": 1})
