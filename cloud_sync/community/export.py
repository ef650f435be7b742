"""A simulation run's files: energy, trades, balances and summary, each as CSV and Parquet.

Energy and money are exact integers (Wh, µEUR/kWh, nEUR); times are the quarter-hour's start
in UTC. Every row carries the run id. Written with pyarrow, so the same run gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cloud_sync.community.simulate import Run, summary

TABLES = ("energy", "trades", "balances", "summary")


def _times(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]"), pa.timestamp("s", tz="UTC"))


def tables(run: Run) -> dict[str, pa.Table]:
    ids = np.array([h.member.id for h in run.homes])
    ticks, n = len(run.tick_starts), len(run.homes)
    m = run.metered
    energy = {
        "run_id": pa.array([run.run_id] * (ticks * n)),
        "tick_start": _times(np.repeat(run.tick_starts, n)),
        "member": pa.array(np.tile(ids, ticks)),
        **{f"{k}_wh": pa.array(getattr(m, k).ravel()) for k in ("load", "pv", "charge", "discharge", "curtailed")},
        "import_wh": pa.array(m.import_wh.ravel()),
        "export_wh": pa.array(m.export_wh.ravel()),
    }
    t = run.trades
    trades = {
        "run_id": pa.array([run.run_id] * len(t["wh"])),
        "tick_start": _times(t["tick_start"]),
        "seq": pa.array(t["seq"]),
        "seller": pa.array(ids[t["seller"]]),
        "buyer": pa.array(ids[t["buyer"]]),
        "wh": pa.array(t["wh"]),
        "price_ueur_kwh": pa.array(t["price"]),
        "fee_ueur_kwh": pa.array(np.full(len(t["wh"]), run.settings.prices.fee, np.int64)),
    }
    members = [h.member for h in run.homes]
    balances = {
        "run_id": pa.array([run.run_id] * n),
        "member": pa.array(ids),
        "role": pa.array([str(mb.role) for mb in members]),
        "profile": pa.array([h.profile for h in run.homes]),
        "pv_wp": pa.array([mb.pv_wp for mb in members], pa.int64()),
        "battery_wh": pa.array([mb.battery_wh for mb in members], pa.int64()),
        "inverter_w": pa.array([mb.inverter_w for mb in members], pa.int64()),
        "export_limit_w": pa.array([mb.export_limit_w for mb in members], pa.int64()),
        "load_wh": pa.array(m.load.sum(axis=0)),
        **{k: pa.array(run.totals[k]) for k in ("sold_wh", "bought_wh", "grid_import_wh", "grid_export_wh")},
        **{f"{k}_neur": pa.array(run.totals[k]) for k in ("revenue", "cost", "fee", "saving")},
    }
    return {
        "energy": pa.table(energy),
        "trades": pa.table(trades),
        "balances": pa.table(balances),
        "summary": pa.Table.from_pylist([summary(run)]),
    }


def write(run: Run, out: Path) -> Path:
    """Write the run's tables under ``out/<run id>/`` and return that folder."""
    folder = out / run.run_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables(run).items():
        pa_csv.write_csv(table, folder / f"{name}.csv")
        pq.write_table(table, folder / f"{name}.parquet")
    return folder
