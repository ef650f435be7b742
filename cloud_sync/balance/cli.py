"""``nattery-cloud balance …``: participants, metering locations, groups and memberships, price
series, settlement runs and their reports. A thin layer over :mod:`.registry`, :mod:`.runs` and
:mod:`.reports`: each command opens the database, calls one function and turns a refusal into a
one-line error (exit status 1).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Any

import click

from cloud_sync.balance import registry, reports, runs
from cloud_sync.balance.anomalies import CHOICES
from cloud_sync.balance.registry import ROLES, BalanceError
from cloud_sync.balance.timegrid import TimeError, parse_boundary
from cloud_sync.db import Database, DatabaseError, using



def _call(target: str, action: Callable[[Database], Coroutine[Any, Any, Any]]) -> Any:
    try:
        return asyncio.run(using(target, action))
    except (BalanceError, DatabaseError, TimeError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=1, default=str))


def _time(text: str, field: str) -> int:
    try:
        return parse_boundary(text, field)
    except TimeError as exc:
        raise click.BadParameter(str(exc)) from None


def group(db_option: Callable[[Any], Any]) -> click.Group:
    """The ``balance`` command group, with the aggregator's ``--db`` option on every command."""

    @click.group()
    def balance() -> None:
        """Balance groups: participants, metering locations, memberships, settlement runs."""

    @balance.group()
    def participant() -> None:
        """Market participants and their roles."""

    @participant.command("add")
    @db_option
    @click.argument("partner_id")
    @click.option("--name", required=True, help="The participant's name.")
    @click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES),
                  help="A market role (repeat for several).")
    @click.option("--qualifier", default="293", show_default=True, type=click.Choice(["9", "293", "332"]),
                  help="Code list: 9 GS1, 293 BDEW, 332 DVGW.")
    def participant_add(target: str, partner_id: str, name: str, roles: tuple[str, ...], qualifier: str) -> None:
        """Register PARTNER_ID (13-digit market partner ID) with its roles."""
        _echo(_call(target, lambda db: registry.add_participant(db, partner_id, qualifier, name, list(roles))))

    @participant.command("list")
    @db_option
    def participant_list(target: str) -> None:
        """Every participant with its roles."""
        _echo(_call(target, registry.participants))

    @balance.group()
    def location() -> None:
        """Metering locations, linked to devices."""

    @location.command("add")
    @db_option
    @click.argument("melo")
    @click.option("--malo", default=None, help="The market location's MaLo-ID (11 digits).")
    @click.option("--device", default=None, help="The registered device at that home.")
    @click.option("--limit-w", type=int, default=None, help="What the connection can carry, W (anomaly check).")
    def location_add(target: str, melo: str, malo: str | None, device: str | None, limit_w: int | None) -> None:
        """Register metering location MELO (33-character MeLo-ID)."""
        _echo(_call(target, lambda db: registry.add_location(db, melo, malo, device, limit_w)))

    @location.command("list")
    @db_option
    def location_list(target: str) -> None:
        """Every metering location with its device."""
        _echo(_call(target, registry.locations))

    @balance.group("group")
    def group_() -> None:
        """Balance groups."""

    @group_.command("add")
    @db_option
    @click.argument("group_id")
    @click.option("--brp", required=True, help="The balance-responsible party's market partner ID.")
    @click.option("--name", default="", help="A name for people.")
    def group_add(target: str, group_id: str, brp: str, name: str) -> None:
        """Create balance group GROUP_ID, whose balance-responsible party is --brp."""
        _echo(_call(target, lambda db: registry.add_group(db, group_id, name, brp)))

    @group_.command("list")
    @db_option
    def group_list(target: str) -> None:
        """Every balance group with its number of memberships."""
        _echo(_call(target, registry.groups))

    @balance.command()
    @db_option
    @click.argument("group_id")
    @click.argument("melo")
    @click.option("--start", required=True, help="First quarter-hour inside: 2026-06-17T10:15 (Berlin) or with offset.")
    @click.option("--end", default=None, help="First quarter-hour outside (default: open).")
    def join(target: str, group_id: str, melo: str, start: str, end: str | None) -> None:
        """MELO joins GROUP_ID at --start (refused if it overlaps another membership)."""
        lo, hi = _time(start, "start"), None if end is None else _time(end, "end")
        _echo(_call(target, lambda db: registry.join(db, group_id, melo, lo, hi)))

    @balance.command()
    @db_option
    @click.argument("group_id")
    @click.argument("melo")
    @click.option("--end", required=True, help="First quarter-hour outside the group.")
    def leave(target: str, group_id: str, melo: str, end: str) -> None:
        """End MELO's open membership of GROUP_ID at --end (history is kept)."""
        hi = _time(end, "end")
        _echo(_call(target, lambda db: registry.leave(db, group_id, melo, hi)))

    @balance.command()
    @db_option
    @click.argument("group_id")
    def members(target: str, group_id: str) -> None:
        """GROUP_ID's memberships, the whole history."""
        _echo(_call(target, lambda db: registry.memberships(db, group_id)))

    @balance.command()
    @db_option
    @click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--name", default="reBAP", show_default=True, help="The series' name; runs use its newest upload.")
    def prices(target: str, csv_file: Path, name: str) -> None:
        """Upload an imbalance price series (CSV: timestamp,EUR/MWh; validated)."""
        content = csv_file.read_text(encoding="utf-8")
        _echo(_call(target, lambda db: runs.upload_prices(db, name, content)))

    @balance.command()
    @db_option
    @click.argument("group_id")
    @click.option("--from", "start", required=True, help="Period start (e.g. 2026-06-17T00:00, Berlin).")
    @click.option("--to", "end", required=True, help="Period end, exclusive.")
    @click.option("--prices", "series", default="reBAP", show_default=True, help="Price series name.")
    @click.option("--anomalies", default="flag", show_default=True, type=click.Choice(CHOICES),
                  help="Anomalous actuals: settle as metered, exclude, or substitute.")
    def settle(target: str, group_id: str, start: str, end: str, series: str, anomalies: str) -> None:
        """Run the settlement of GROUP_ID over a period (a new version only if its inputs changed)."""
        lo, hi = _time(start, "from"), _time(end, "to")
        _echo(_call(target, lambda db: runs.settle_group(db, group_id, lo, hi, series, anomalies)))

    @balance.command("runs")
    @db_option
    @click.argument("group_id")
    def runs_(target: str, group_id: str) -> None:
        """GROUP_ID's settlement runs, every version."""
        _echo(_call(target, lambda db: runs.list_runs(db, group_id)))

    @balance.command()
    @db_option
    @click.argument("run_id", type=int)
    @click.option("--by", "view", default="slot", show_default=True, type=click.Choice(reports.VIEWS),
                  help="Rows per quarter-hour or per member.")
    @click.option("--format", "fmt", default="csv", show_default=True, type=click.Choice(reports.FORMATS))
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Write here (needed for parquet); default standard output.")
    def report(target: str, run_id: int, view: str, fmt: str, out: Path | None) -> None:
        """A settlement run's results as CSV, JSON or Parquet."""
        if fmt == "parquet" and out is None:
            raise click.UsageError("--format parquet needs --out FILE")
        rows = _call(target, lambda db: reports.run_rows(db, run_id, view))
        data: str | bytes = (reports.as_csv(rows) if fmt == "csv" else reports.as_parquet(rows) if fmt == "parquet"
                             else json.dumps(reports.as_json(rows), indent=1))
        if out is None:
            click.echo(data, nl=False)
        elif isinstance(data, bytes):
            out.write_bytes(data)
        else:
            out.write_text(data)

    @balance.command()
    @db_option
    @click.argument("group_id")
    @click.option("--day", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Local delivery day.")
    @click.option("--format", "fmt", default="csv", show_default=True, type=click.Choice(["csv", "json"]))
    def schedule(target: str, group_id: str, day: Any, fmt: str) -> None:
        """GROUP_ID's day-ahead position for --day, per quarter-hour (what its BRP nominates)."""
        wanted: date = day.date()
        rows = _call(target, lambda db: reports.nomination(db, group_id, wanted))
        click.echo(reports.as_csv(rows) if fmt == "csv" else json.dumps(reports.as_json(rows), indent=1), nl=False)

    return balance
