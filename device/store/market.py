"""Prices, market series and forecast runs (owner: prices and forecast)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from device.store.core import StoreCore


class MarketQueries(StoreCore):
    def price_fetch_status(self) -> dict[str, Any]:
        """When prices were last fetched and up to when they are known (installer health)."""
        row = self.db.execute("SELECT max(fetched_at), max(ts + resolution_s) FROM prices").fetchone()
        return {"last_fetch_ts": row[0], "known_until_ts": row[1]}

    def price_points(self, zone: str, start: int, end: int) -> list[dict[str, Any]]:
        """Known prices of ``zone`` in [start, end): one per slot (newest fetch wins when sources
        overlap). The zone matters after an installer changes ``prices.zone``."""
        rows = self.db.execute(
            """SELECT ts, resolution_s, price_eur_mwh, source FROM prices
               WHERE zone = ? AND ts >= ? AND ts < ? ORDER BY ts, fetched_at""",
            [zone, start, end],
        ).fetchall()
        latest = {r[0]: {"ts": r[0], "resolution_s": r[1], "eur_mwh": r[2], "source": r[3]} for r in rows}
        return list(latest.values())

    def latest_forecast(self, kind: str, start: int, end: int) -> list[dict[str, Any]]:
        """The newest run of a forecast kind, limited to [start, end)."""
        rows = self.db.execute(
            """SELECT ts, value, lower, upper FROM forecasts
               WHERE kind = ? AND made_at = (SELECT max(made_at) FROM forecasts WHERE kind = ?)
                 AND ts >= ? AND ts < ? ORDER BY ts""",
            [kind, kind, start, end],
        ).fetchall()
        return [{"ts": r[0], "value": r[1], "lower": r[2], "upper": r[3]} for r in rows]
    def upsert_prices(
        self, zone: str, slots: Iterable[tuple[int, float]], resolution_s: int, source: str, fetched_at: float
    ) -> int:
        """Store one source's prices ``(ts, EUR/MWh)`` for a zone in one transaction; returns how many."""
        rows = [
            {"zone": zone, "ts": int(ts), "resolution_s": resolution_s, "price_eur_mwh": float(v),
             "source": source, "fetched_at": fetched_at}
            for ts, v in slots
        ]
        self._write(lambda: self.db.table("prices").upsert_all(rows, pk=("zone", "ts", "source")))
        return len(rows)

    def prices_for(self, zone: str, start: int, end: int, source: str | None = None) -> list[dict[str, Any]]:
        """Prices of ``zone`` in [start, end), oldest first; one row per slot (newest fetch wins)."""
        where, args = "zone = ? AND ts >= ? AND ts < ?", [zone, start, end]
        if source is not None:
            where, args = where + " AND source = ?", [*args, source]
        rows = self.db.execute(
            f"SELECT ts, resolution_s, price_eur_mwh, source, fetched_at FROM prices WHERE {where} "
            "ORDER BY ts, fetched_at", args,
        ).fetchall()
        latest = {r[0]: {"ts": r[0], "resolution_s": r[1], "price_eur_mwh": r[2], "source": r[3],
                         "fetched_at": r[4]} for r in rows}
        return list(latest.values())

    def upsert_market_series(
        self, zone: str, series: str, slots: Iterable[tuple[int, float]], resolution_s: int, fetched_at: float
    ) -> int:
        rows = [
            {"zone": zone, "series": series, "ts": int(ts), "resolution_s": resolution_s, "value": float(v),
             "fetched_at": fetched_at}
            for ts, v in slots
        ]
        self._write(lambda: self.db.table("market_series").upsert_all(rows, pk=("zone", "series", "ts")))
        return len(rows)

    def market_series(self, zone: str, start: int, end: int) -> dict[str, list[tuple[int, float]]]:
        """Every stored series of ``zone`` in [start, end): name → ``[(ts, value), ...]`` oldest first."""
        out: dict[str, list[tuple[int, float]]] = {}
        for series, ts, value in self.db.execute(
            "SELECT series, ts, value FROM market_series WHERE zone = ? AND ts >= ? AND ts < ? ORDER BY series, ts",
            [zone, start, end],
        ).fetchall():
            out.setdefault(series, []).append((ts, value))
        return out

    def insert_forecast(
        self, kind: str, made_at: int, slots: Iterable[tuple[int, float]]
    ) -> int:
        """Store one forecast run ``(ts, value)``; re-running with the same ``made_at`` replaces it."""
        rows = [{"kind": kind, "made_at": made_at, "ts": int(ts), "value": float(v)} for ts, v in slots]
        self._write(lambda: self.db.table("forecasts").upsert_all(rows, pk=("kind", "made_at", "ts")))
        return len(rows)

    def price_forecast_error(self, zone: str, start: int, end: int) -> dict[str, Any]:
        """How far the price forecast missed the cleared prices of [start, end): per slot the
        newest forecast run that covered it (made before its price was known) against the price;
        ``{"mae_eur_mwh": mean absolute error or None, "slots": how many were compared}``."""
        row = self.db.execute(
            """SELECT avg(abs(f.value - p.price)), count(*) FROM forecasts f
               JOIN (SELECT ts, max(made_at) AS made_at FROM forecasts
                     WHERE kind = 'price' AND ts >= ? AND ts < ? GROUP BY ts) newest
                 ON f.ts = newest.ts AND f.made_at = newest.made_at AND f.kind = 'price'
               JOIN (SELECT ts, avg(price_eur_mwh) AS price FROM prices
                     WHERE zone = ? AND ts >= ? AND ts < ? GROUP BY ts) p ON p.ts = f.ts""",
            [start, end, zone, start, end],
        ).fetchone()
        return {"mae_eur_mwh": None if row[0] is None else float(row[0]), "slots": int(row[1])}

    def latest_forecast_made_at(self, kind: str) -> int | None:
        row = self.db.execute("SELECT max(made_at) FROM forecasts WHERE kind = ?", [kind]).fetchone()
        return None if row[0] is None else int(row[0])

