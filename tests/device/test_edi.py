"""The daily MSCONS export on a real SQLite store, read back by the parser in common/."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from common import mscons
from device import config as configuration
from device.accounting import day_bounds
from device.edi import SETTLE_S, ExportError, export_day, kwh
from device.store import Store

TZ = "Europe/Berlin"
MARKET = configuration.MarketSettings(
    malo_id="51238696781", melo_id="DE0001234567890000000000000000001",
    sender_id="9900000000003", receiver_id="9800000000007", receiver_qualifier="332",
)


def slot(ts: int, imp: float, exp: float, covered_s: float = 900.0) -> dict[str, Any]:
    return {"ts": ts, "import_wh": imp, "export_wh": exp, "charge_wh": 0.0, "discharge_wh": 0.0,
            "pv_wh": 0.0, "load_wh": imp, "samples": 90, "covered_s": covered_s,
            "complete": int(covered_s >= 900), "source": "power", "updated_at": 0.0}


def fill(store: Store, day: date, skip: set[int] = frozenset(), partial: dict[int, float] | None = None) -> list[dict[str, Any]]:  # type: ignore[assignment]
    """Slots for every quarter-hour of ``day`` except the indices in ``skip``."""
    start, end = day_bounds(day, TZ)
    rows = []
    for n, ts in enumerate(range(start, end, 900)):
        if n in skip:
            continue
        rows.append(slot(ts, 100.0 + n * 1.2345, (n % 7) * 33.3337, (partial or {}).get(n, 900.0)))
    store.db.table("energy_slots").insert_all(rows)
    return rows


def after(day: date) -> float:
    return day_bounds(day, TZ)[1] + SETTLE_S + 5


@pytest.mark.parametrize(("day", "slots", "version"), [
    (date(2026, 3, 29), 92, "2.4c"), (date(2026, 10, 25), 100, "2.5"), (date(2026, 6, 15), 96, "2.4c")])
def test_every_slot_round_trips_in_utc_on_clock_change_days(tmp_path: Path, day: date, slots: int, version: str) -> None:
    store = Store(tmp_path / "nattery.db")
    rows = fill(store, day)
    made = export_day(store, MARKET, day, TZ, after(day))
    assert made is not None
    parsed = mscons.parse(made.content)
    (message,) = parsed.messages
    start, end = day_bounds(day, TZ)
    assert (message.start, message.end, message.melo_id) == (start, end, MARKET.melo_id)
    assert message.check_id == "13018" and message.version == version
    for obis, column in ((mscons.OBIS_IMPORT, "import_wh"), (mscons.OBIS_EXPORT, "export_wh")):
        values = mscons.values_of(parsed, obis)
        assert len(values) == slots
        assert [(v.start, v.end, v.kwh, v.status) for v in values] == [
            (r["ts"], r["ts"] + 900, kwh(r[column]), "true") for r in rows]
        assert all(v.kwh == v.kwh.quantize(Decimal("0.001")) for v in values)


def test_gaps_become_substitute_values_never_zero_or_missing(tmp_path: Path) -> None:
    day = date(2026, 6, 15)
    store = Store(tmp_path / "nattery.db")
    rows = {r["ts"]: r for r in fill(store, day, skip={0, 10, 11}, partial={20: 450.0})}
    made = export_day(store, MARKET, day, TZ, after(day))
    assert made is not None
    values = mscons.values_of(mscons.parse(made.content), mscons.OBIS_IMPORT)
    assert len(values) == 96
    start = day_bounds(day, TZ)[0]
    by_index = {(v.start - start) // 900: v for v in values}
    # No measurement before slot 0: the nearest measured value, flagged.
    assert (by_index[0].status, by_index[0].method, by_index[0].kwh) == ("substitute", "interpolated", kwh(rows[start + 900]["import_wh"]))
    # Slots 10 and 11 lie between 9 and 12: linear.
    left, right = rows[start + 9 * 900]["import_wh"], rows[start + 12 * 900]["import_wh"]
    assert by_index[10].kwh == kwh(left + (right - left) / 3) and by_index[10].method == "interpolated"
    assert by_index[11].kwh == kwh(left + (right - left) * 2 / 3)
    # Half a slot measured: scaled to the whole slot.
    assert (by_index[20].status, by_index[20].method, by_index[20].kwh) == (
        "substitute", "extrapolated", kwh(rows[start + 20 * 900]["import_wh"] * 2))
    assert [v.status for v in values].count("substitute") == 4
    assert "QTY+67:" in made.content and "STS+Z32++Z92'" in made.content and "STS+Z32++ZJ2'" in made.content


def test_exported_once_again_when_a_late_slot_completes_the_day(tmp_path: Path) -> None:
    day = date(2026, 6, 15)
    store = Store(tmp_path / "nattery.db")
    fill(store, day, skip={95})
    first = export_day(store, MARKET, day, TZ, after(day))
    assert first is not None
    assert export_day(store, MARKET, day, TZ, after(day) + 60) is None  # unchanged: not sent twice
    last_ts = day_bounds(day, TZ)[1] - 900
    store.db.table("energy_slots").insert(slot(last_ts, 321.0, 0.0))
    second = export_day(store, MARKET, day, TZ, after(day) + 120)
    assert second is not None and second.name != first.name
    values = mscons.values_of(mscons.parse(second.content), mscons.OBIS_IMPORT)
    assert (values[-1].status, values[-1].kwh) == ("true", Decimal("0.321"))
    # References and document dates increase; both files are queued for the edi stream.
    one, two = (mscons.parse(f.content) for f in (first, second))
    assert int(two.reference) == int(one.reference) + 1
    assert two.messages[0].document_date > one.messages[0].document_date
    assert two.messages[0].document_number > one.messages[0].document_number
    queued = [json.loads(r[0]) for r in store.db.execute("SELECT data FROM outbox WHERE stream = 'edi' ORDER BY seq")]
    assert [q["name"] for q in queued] == [first.name, second.name]
    assert queued[1]["content"] == second.content
    stored = store.db.execute("SELECT content FROM edi_files WHERE name = ?", [second.name]).fetchone()[0]
    assert stored.encode("latin-1") == second.content.encode("ascii")


def test_version_follows_the_document_date(tmp_path: Path) -> None:
    day = date(2026, 9, 29)
    store = Store(tmp_path / "nattery.db")
    fill(store, day)
    made = export_day(store, MARKET, day, TZ, after(day))
    assert made is not None and "MSCONS:D:04B:UN:2.4c'" in made.content
    assert mscons.mig_version(date(2026, 9, 30)) == "2.4c" and mscons.mig_version(date(2026, 10, 1)) == "2.5"


def test_refusals_and_empty_days(tmp_path: Path) -> None:
    day = date(2026, 6, 15)
    store = Store(tmp_path / "nattery.db")
    with pytest.raises(ExportError, match="day 2026-06-15: not over yet; it can be exported from 2026-06-15T22:10Z"):
        export_day(store, MARKET, day, TZ, day_bounds(day, TZ)[1] - 1)
    with pytest.raises(ExportError, match=r"market.malo_id: not set"):
        export_day(store, configuration.MarketSettings(), day, TZ, after(day))
    assert export_day(store, MARKET, day, TZ, after(day)) is None  # nothing measured: nothing to send


def test_cli_writes_the_days_files_and_refuses_in_one_line(tmp_path: Path) -> None:
    import yaml
    from click.testing import CliRunner

    from device.cli import main

    day = date(2026, 3, 29)
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "nattery.db")
    fill(store, day, skip={5})
    store.close()
    installer = tmp_path / "nattery.yaml"
    installer.write_text(yaml.safe_dump({"market": {k: getattr(MARKET, k) for k in (
        "malo_id", "melo_id", "sender_id", "receiver_id", "receiver_qualifier")}}))
    args = ["edi", "export", "--day", "2026-03-29", "--config", str(installer), "--data-dir", str(data)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (written,) = (tmp_path / "out").iterdir()
    assert result.output.strip().splitlines()[-1] == str(written)  # after the log line
    values = mscons.values_of(mscons.parse(written.read_bytes().decode("latin-1")), mscons.OBIS_EXPORT)
    assert len(values) == 92 and values[5].status == "substitute"
    again = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert again.exit_code == 0 and again.output.strip() == str(written)  # unchanged: no second file, no log
    installer.write_text("market: {}\n")
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert refused.exit_code == 1
    expected = "Error: market.malo_id: not set; the MSCONS export needs the market identities (market: ...)"
    assert refused.output.strip().splitlines()[-1:] == [expected]


async def test_export_loop_exports_finished_days_each_round(tmp_path: Path) -> None:
    from device.edi import export_loop
    from device.home.effective import EffectiveSettings
    from device.store import AsyncStore

    days = (date(2026, 10, 24), date(2026, 10, 25))
    seeded = Store(tmp_path / "nattery.db")
    for day in days:
        fill(seeded, day)
    seeded.close()
    cfg = configuration.load(files=[configuration.DEFAULT_FILE], environ={}, overrides={
        "device": {"data_dir": str(tmp_path)},
        "market": {k: getattr(MARKET, k) for k in ("malo_id", "melo_id", "sender_id", "receiver_id",
                                                   "receiver_qualifier")}})
    settings = await EffectiveSettings.open(cfg, tmp_path)
    now = [after(days[0])]  # the first day is over, the second is not
    rounds: asyncio.Queue[None] = asyncio.Queue()
    go_on: asyncio.Queue[None] = asyncio.Queue()

    async def pause(_: float) -> None:
        rounds.put_nowait(None)
        await go_on.get()

    async with AsyncStore(tmp_path / "nattery.db") as store:
        def names(s: Store) -> list[str]:
            return [r[0] for r in s.db.execute("SELECT name FROM edi_files ORDER BY id")]
        loop = asyncio.create_task(export_loop(store, settings, clock=lambda: now[0], sleep=pause))
        try:
            await asyncio.wait_for(rounds.get(), 30)
            assert [n.split("_")[2] for n in await store.call(names)] == ["2026-10-24"]
            now[0] = after(days[1])
            go_on.put_nowait(None)
            await asyncio.wait_for(rounds.get(), 30)
            assert [n.split("_")[2] for n in await store.call(names)] == ["2026-10-24", "2026-10-25"]
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop


async def test_a_failing_round_is_logged_and_the_next_one_runs() -> None:
    from structlog.testing import capture_logs

    from device.rounds import repeat

    calls: list[float] = []

    async def step(now: float) -> None:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("disk unplugged")

    async def pause(_: float) -> None:
        if len(calls) == 2:
            raise asyncio.CancelledError

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await repeat(step, 1.0, "mscons_export_failed", clock=lambda: 7.0, sleep=pause)
    assert calls == [7.0, 7.0]
    assert [(e["event"], e["error"]) for e in logs] == [("mscons_export_failed", "RuntimeError('disk unplugged')")]
