"""Quarter-hour energy slots derived from readings, and their settlement in money."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from device import energy
from device.store.core import StoreCore


class EnergyQueries(StoreCore):
    def update_energy_slots(
        self, now: float, max_gap_s: float = 60.0, settle_s: float = 120.0, max_days: int = 2
    ) -> int:
        """Derive the quarter-hour slots that are over from the readings; returns how many.

        Incremental: continues after the newest stored slot. A slot is computed once it ended
        more than ``max_gap_s + settle_s`` ago (the bridge writes readings in batches), and
        at most ``max_days`` of readings are processed per call so a large backlog never
        holds the database for long. See :mod:`device.energy` for the rules.
        """
        final_end = energy.slot_start(now - max_gap_s - settle_s)
        last = self.db.execute("SELECT max(ts) FROM energy_slots").fetchone()[0]
        start = last + energy.SLOT_S if last is not None else None
        written = 0
        for _ in range(max_days):
            nxt = self.db.execute(
                "SELECT min(ts) FROM readings WHERE ts >= ?", [-1e18 if start is None else start - max_gap_s]
            ).fetchone()[0]
            if nxt is None:
                break
            start = max(start or 0, energy.slot_start(nxt))
            end = min(start + 86_400, final_end)
            if start >= end:
                break
            rows = self.db.execute(
                "SELECT ts, grid_w, battery_w, pv_w, load_w, "
                + ", ".join(f"json_extract(data, '$.roles.{r}')" for r in energy.COUNTER_ROLES.values())
                + " FROM readings WHERE ts >= ? AND ts < ? ORDER BY ts",
                [start - max_gap_s, end + max_gap_s],
            ).fetchall()
            samples = [
                energy.Sample(r[0], r[1], r[2], r[3], r[4], dict(zip(energy.QUANTITIES, r[5:], strict=True)))
                for r in rows
            ]
            slots = [{**row, "updated_at": now} for row in energy.integrate(samples, start, end, max_gap_s)]
            self._write(lambda: self.db.table("energy_slots").upsert_all(slots, pk="ts"))  # noqa: B023 — runs now  # noqa: B023 — runs now  # noqa: B023 — runs now  # noqa: B023 — runs now
            written += len(slots)
            start = end
        return written

    def energy_slots(self, start: float, end: float) -> list[dict[str, Any]]:
        """Stored slots with ``start <= ts < end``, oldest first."""
        return list(
            self.db.query("SELECT * FROM energy_slots WHERE ts >= ? AND ts < ? ORDER BY ts", [start, end])
        )

    def energy_with_money(self, start: float, end: float) -> list[dict[str, Any]]:
        """Each stored slot in [start, end), oldest first: its energy (Wh) and, once settled, its
        money (EUR) and import price (EUR/MWh; NULL before settlement or without a price)."""
        return list(self.db.query(
            """SELECT e.ts, e.pv_wh, e.load_wh, e.import_wh, e.export_wh, e.charge_wh, e.discharge_wh,
                      s.import_price, s.export_price, s.cost_eur, s.revenue_eur,
                      s.cost_no_battery_eur, s.cost_self_consumption_eur
               FROM energy_slots e LEFT JOIN settlements s ON s.ts = e.ts
               WHERE e.ts >= ? AND e.ts < ? ORDER BY e.ts""",
            [start, end],
        ))

    def save_settlements(
        self, rows: list[dict[str, Any]], day: str, totals: Mapping[str, Any], computed_at: float
    ) -> None:
        """Upsert a day's settled slots and its totals in one transaction (the outbox
        triggers queue each slot for the cloud in the same transaction)."""
        slots = [{**r, "computed_at": computed_at} for r in rows]

        def write() -> None:
            if slots:
                self.db.table("settlements").upsert_all(slots, pk="ts")
            self.db.table("settlement_days").upsert(
                {"day": day, "totals": json.dumps(dict(totals)), "computed_at": computed_at}, pk="day"
            )

        self._write(write)

    def settlement_day(self, day: str) -> dict[str, Any] | None:
        """Totals of a settled local day (``YYYY-MM-DD``), or None."""
        row = self.db.execute("SELECT totals FROM settlement_days WHERE day = ?", [day]).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def last_settled_ts(self, start: int, end: int) -> int | None:
        """Start of the newest settled slot in [start, end), or None."""
        row = self.db.execute("SELECT max(ts) FROM settlements WHERE ts >= ? AND ts < ?", [start, end]).fetchone()
        return None if row[0] is None else int(row[0])

    def settlement_totals(self, start: int, end: int) -> dict[str, Any]:
        """Sums of the settled slots in [start, end); ``slots`` = 0 when nothing is settled."""
        row = self.db.execute(
            """SELECT count(*), sum(import_wh), sum(export_wh), sum(cost_eur), sum(revenue_eur),
                      sum(cost_no_battery_eur), sum(cost_self_consumption_eur)
               FROM settlements WHERE ts >= ? AND ts < ?""",
            [start, end],
        ).fetchone()
        keys = ("slots", "import_wh", "export_wh", "cost_eur", "revenue_eur",
                "cost_no_battery_eur", "cost_self_consumption_eur")
        return dict(zip(keys, row, strict=True))

