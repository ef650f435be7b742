"""The forecast without a model: a robust blend of naive forecasts.

Used when no model file is installed and too little history is stored for the linear model (a
fresh device), and beyond the last day a model can reach. Per hour: half the "standard naive"
forecast (the week-before on Monday, Saturday and Sunday, the day-before otherwise, as in
Weron's benchmark) and half the median of the same hour over the last seven days, which a single
spike or holiday cannot drag far.
"""

from __future__ import annotations

import numpy as np

WEEKEND_LIKE = (0, 5, 6)  # Monday copies last Monday; Saturday, Sunday copy last week


def naive_blend(prices: np.ndarray, target: int, weekday: int) -> np.ndarray | None:
    """24 values for row ``target`` from rows before it; ``None`` with less than one known day."""
    past = prices[max(0, target - 7) : target]
    known = past[np.isfinite(past).all(axis=1)]
    if len(known) == 0:
        return None
    median = np.median(known, axis=0)
    day_before = prices[target - 1] if target >= 1 else None
    week_before = prices[target - 7] if target >= 7 else None
    preferred = week_before if weekday in WEEKEND_LIKE else day_before
    standard = preferred if preferred is not None and np.isfinite(preferred).all() else known[-1]
    return 0.5 * standard + 0.5 * median
