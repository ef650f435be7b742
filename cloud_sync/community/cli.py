"""``nattery-cloud simulate`` (and the community commands): thin over the library."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar

import click

from cloud_sync.db import DatabaseError, using
from cloud_sync.community.model import RULE_NAMES, CommunityError, Member, Order, TickPrices, parse_role

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    """``nattery-cloud``'s ``--db`` option."""

    def __call__(self, fn: F) -> F: ...


#: The summary columns of the comparison table, with their headings.
COMPARED = {
    "rule": "rule",
    "self_sufficiency_alone": "self-sufficiency alone",
    "self_sufficiency": "with sharing",
    "shared_kwh": "shared kWh",
    "trades": "trades",
    "mean_price_ct_kwh": "mean price ct/kWh",
    "saving_eur": "saved EUR",
    "saving_per_member_min_eur": "per member min",
    "saving_per_member_median_eur": "median",
    "saving_per_member_max_eur": "max",
    "saving_gini": "Gini of savings",
    "fee_eur": "fees EUR",
}


def table(rows: list[dict[str, object]]) -> str:
    """A Markdown table of the compared summary columns, one row per run."""
    lines = ["| " + " | ".join(COMPARED.values()) + " |", "|" + "---|" * len(COMPARED)]
    lines += ["| " + " | ".join(str(r[k]) for k in COMPARED) + " |" for r in rows]
    return "\n".join(lines)


@click.command()
@click.option("--members", type=int, default=50, show_default=True, help="Community size (2 to 100,000).")
@click.option("--days", type=int, default=7, show_default=True, help="Days to simulate from --start.")
@click.option("--seed", type=int, default=1, show_default=True, help="The community and its orders; same seed, same run.")
@click.option("--rule", type=click.Choice([*RULE_NAMES, "all"]), default="all", show_default=True,
              help="Matching rule, or all four on the same community.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default="2024-06-01", show_default=True,
              help="First local day (within 2024, the profiles' year).")
@click.option("--households", type=click.Path(path_type=Path, file_okay=False), envvar="NATTERY_HOUSEHOLDS",
              default="../shared/data/household", show_default=True,
              help="The shared data set's household/ folder (env NATTERY_HOUSEHOLDS).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default="simulations", show_default=True,
              help="Each run's CSV and Parquet files go to OUT/<run id>/.")
def simulate(members: int, days: int, seed: int, rule: str, start: datetime, households: Path, out: Path) -> None:
    """Match and settle a synthetic community built from real household and PV profiles; write
    energy, trades, balances and a summary per run (CSV and Parquet), and print the summaries."""
    from cloud_sync.community import export
    from cloud_sync.community.simulate import Settings, summary
    from cloud_sync.community.simulate import simulate as run_simulation

    rows = []
    try:
        for name in RULE_NAMES if rule == "all" else [rule]:
            run = run_simulation(Settings(members, days, seed, name, date.fromordinal(start.toordinal())), households)
            folder = export.write(run, out)
            rows.append(summary(run))
            click.echo(f"{name}: {folder}", err=True)
    except CommunityError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(table(rows))


def _ueur(value: Decimal, what: str) -> int:
    """ct/kWh (as typed) → µEUR/kWh, refusing what the integer unit cannot hold exactly."""
    micro = value * 10_000
    if micro != micro.to_integral_value():
        raise click.BadParameter(f"{value} is not allowed (at most 4 decimals of a cent)", param_hint=what)
    return int(micro)


def _watts(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 1000)


def _epoch(value: datetime) -> int:
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())


WHEN = click.DateTime(["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"])


def commands(db_option: Decorator) -> click.Group:
    """The ``community`` group; ``db_option`` is ``nattery-cloud``'s own. Each command imports the
    ledger and the membership model (and NumPy) itself: building the group is part of every
    ``nattery-cloud`` start, ``serve`` included, which needs none of them."""

    def run(action: Callable[[Any], Coroutine[Any, Any, Any]], target: str) -> Any:
        try:
            return asyncio.run(using(target, action))
        except (CommunityError, DatabaseError, OSError) as exc:
            raise click.ClickException(str(exc)) from None

    @click.group()
    def community() -> None:
        """Energy-sharing communities: members, metered positions, matching, trades and balances."""

    @community.command("create")
    @db_option
    @click.argument("community_id")
    @click.option("--rule", type=click.Choice(RULE_NAMES), required=True, help="How each quarter-hour is matched.")
    @click.option("--feed-in-ct", type=Decimal, required=True, help="Grid feed-in price, ct/kWh (the price floor).")
    @click.option("--import-ct", type=Decimal, required=True, help="Grid import price, ct/kWh (the ceiling, fee included).")
    @click.option("--fee-ct", type=Decimal, default=Decimal(0), show_default=True, help="Platform fee, ct/kWh, paid by the buyer.")
    @click.option("--fixed-price-ct", type=Decimal, help="Price of greedy and proportional trades (default: the band's middle).")
    @click.option("--name", default="", help="A name to show.")
    def create(target: str, community_id: str, rule: str, feed_in_ct: Decimal, import_ct: Decimal, fee_ct: Decimal,
               fixed_price_ct: Decimal | None, name: str) -> None:
        """Create community COMMUNITY_ID with its rule and prices."""
        from cloud_sync.community import members

        c = members.Community(community_id, name, rule, TickPrices(_ueur(feed_in_ct, "--feed-in-ct"),
                                                                   _ueur(import_ct, "--import-ct"), _ueur(fee_ct, "--fee-ct")),
                              None if fixed_price_ct is None else _ueur(fixed_price_ct, "--fixed-price-ct"))

        async def act(db: Any) -> None:
            async with db.begin() as conn:
                await members.create(conn, c)
        run(act, target)
        click.echo(f"community {community_id} created ({rule})")

    @community.command("list")
    @db_option
    def list_communities(target: str) -> None:
        """Communities with their rule and prices."""
        from cloud_sync.community import members

        async def act(db: Any) -> list[members.Community]:
            async with db.read() as conn:
                return await members.all_communities(conn)
        for c in run(act, target):
            click.echo(f"{c.id}\t{c.rule}\tfeed_in={c.prices.feed_in}\timport={c.prices.grid_import}\tfee={c.prices.fee} µEUR/kWh")

    @community.command("join")
    @db_option
    @click.argument("community_id")
    @click.argument("member_id")
    @click.option("--role", type=click.Choice(["prosumer", "consumer"]), required=True, help="A consumer only buys.")
    @click.option("--from", "valid_from", type=WHEN, required=True, help="First tick (UTC) of this membership.")
    @click.option("--pv-kwp", type=Decimal, default=Decimal(0), show_default=True, help="PV size.")
    @click.option("--battery-kwh", type=Decimal, default=Decimal(0), show_default=True, help="Battery size.")
    @click.option("--inverter-kw", type=Decimal, default=Decimal(0), show_default=True, help="Inverter AC power.")
    @click.option("--export-limit-kw", type=Decimal, help="Feed-in limit of the grid connection (default: none).")
    @click.option("--device", help="Its nattery device: positions come from the device's energy slots.")
    @click.option("--ask-ct", type=Decimal, help="Least it sells for, ct/kWh (price rules).")
    @click.option("--bid-ct", type=Decimal, help="Most it pays, ct/kWh (price rules).")
    def join(target: str, community_id: str, member_id: str, role: str, valid_from: datetime, pv_kwp: Decimal,
             battery_kwh: Decimal, inverter_kw: Decimal, export_limit_kw: Decimal | None, device: str | None,
             ask_ct: Decimal | None, bid_ct: Decimal | None) -> None:
        """MEMBER_ID (a metering location) joins, or changes its system or orders, from --from on."""
        from cloud_sync.community import members

        start = _epoch(valid_from)
        order = {k: None if v is None else Order(_ueur(v, f"--{k}-ct"), start * 1000) for k, v in (("ask", ask_ct), ("bid", bid_ct))}
        m = members.Membership(Member(member_id, parse_role(role), int(pv_kwp * 1000), int(battery_kwh * 1000),
                                      int(inverter_kw * 1000), _watts(export_limit_kw)), start, None, device,
                               order["ask"], order["bid"])

        async def act(db: Any) -> None:
            async with db.begin() as conn:
                await members.join(conn, await members.get(conn, community_id), m)
        run(act, target)
        click.echo(f"{member_id} in {community_id} from {start}")

    @community.command("leave")
    @db_option
    @click.argument("community_id")
    @click.argument("member_id")
    @click.option("--at", type=WHEN, required=True, help="First tick (UTC) without it.")
    def leave(target: str, community_id: str, member_id: str, at: datetime) -> None:
        """End MEMBER_ID's membership at --at."""
        from cloud_sync.community import members

        async def act(db: Any) -> None:
            async with db.begin() as conn:
                await members.leave(conn, await members.get(conn, community_id), member_id, _epoch(at))
        run(act, target)
        click.echo(f"{member_id} leaves {community_id} at {_epoch(at)}")

    @community.command("positions")
    @db_option
    @click.argument("community_id")
    @click.argument("csv_file", type=click.File())
    def add_positions(target: str, community_id: str, csv_file: TextIO) -> None:
        """Load metered positions from a CSV (member,tick_start,import_wh,export_wh; tick_start in epoch s)."""
        from cloud_sync.community import members, positions

        rows = []
        for line, r in enumerate(csv.DictReader(csv_file), start=2):
            try:
                rows.append(positions.Metered(r["member"], int(r["tick_start"]), int(r["import_wh"]), int(r["export_wh"])))
            except (KeyError, TypeError, ValueError) as exc:
                raise click.ClickException(f"{csv_file.name} line {line}: {exc} (columns member,tick_start,import_wh,export_wh; whole numbers)") from None

        async def act(db: Any) -> int:
            async with db.begin() as conn:
                return await positions.store(conn, await members.get(conn, community_id), rows)
        click.echo(f"{len(rows)} positions, {run(act, target)} new or changed")

    @community.command("match")
    @db_option
    @click.argument("community_id")
    @click.option("--grace-s", type=click.FloatRange(0), default=0.0, show_default=True,
                  help="Wait this long after a tick's end for late readings.")
    def match(target: str, community_id: str, grace_s: float) -> None:
        """Match and settle every due tick of COMMUNITY_ID (each once; changed ticks as corrections)."""
        from cloud_sync.community import ledger

        import json
        import socket

        async def act(db: Any) -> ledger.MatchRun:
            return await ledger.match_due(db, community_id, socket.gethostname(), grace_s=grace_s)
        click.echo(json.dumps(run(act, target).as_dict()))

    @community.command("balances")
    @db_option
    @click.argument("community_id")
    def show_balances(target: str, community_id: str) -> None:
        """Each member's totals: Wh sold and bought, EUR received, paid, in fees and saved."""
        from cloud_sync.community import ledger, members

        async def act(db: Any) -> list[dict[str, Any]]:
            async with db.read() as conn:
                return await ledger.balances(conn, (await members.get(conn, community_id)).id)
        click.echo("member\tsold_wh\tbought_wh\trevenue_eur\tcost_eur\tfee_eur\tsaving_eur")
        for b in run(act, target):
            eur = [f"{Decimal(b[k]) / 10**9:.4f}" for k in ("revenue_neur", "cost_neur", "fee_neur", "saving_neur")]
            click.echo("\t".join([str(b["member"]), str(b["sold_wh"]), str(b["bought_wh"]), *eur]))

    return community


def register(main: click.Group, db_option: Decorator) -> None:
    """Add the community commands to ``nattery-cloud`` (with its ``--db`` option)."""
    main.add_command(simulate)
    main.add_command(commands(db_option))
