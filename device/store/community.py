"""This home's energy-sharing community trades as the aggregator summed them up (``community_summary``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from device.store.core import StoreCore

PERIODS = ("today", "month")
NEUR_PER_EUR = 1_000_000_000


class CommunityQueries(StoreCore):
    def record_community_summary(self, period: str, period_start: float, rows: Iterable[dict[str, Any]], now: float) -> None:
        """Replace ``period``'s rows with the aggregator's answer (money in nEUR as it sends it)."""
        if period not in PERIODS:
            raise ValueError(f"period: {period!r} is not allowed (one of {', '.join(PERIODS)})")
        rows = list(rows)

        def write() -> None:
            self.db.execute("DELETE FROM community_summary WHERE period = ?", [period])
            for r in rows:
                self.db.execute(
                    "INSERT INTO community_summary (period, community, period_start, member, sold_wh, bought_wh, buyers, "
                    "sellers, revenue_eur, cost_eur, saving_eur, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [period, r["community"], period_start, r["member"], int(r["sold_wh"]), int(r["bought_wh"]),
                     int(r["buyers"]), int(r["sellers"]), r["revenue_neur"] / NEUR_PER_EUR, r["cost_neur"] / NEUR_PER_EUR,
                     r["saving_neur"] / NEUR_PER_EUR, now],
                )

        self._write(write)

    def community_summary(self, today_start: float, month_start: float) -> dict[str, list[dict[str, Any]]]:
        """Per period, the stored rows of the day starting at ``today_start`` and the month
        starting at ``month_start`` (an answer from yesterday is not today's)."""
        starts = {"today": today_start, "month": month_start}
        out: dict[str, list[dict[str, Any]]] = {p: [] for p in PERIODS}
        for row in self.db.query("SELECT * FROM community_summary ORDER BY period, community"):
            if row["period_start"] == starts[row["period"]]:
                out[row["period"]].append(row)
        return out
