"""``nattery-cloud simulate`` (and the community commands): thin over the library."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from cloud_sync.community.model import RULE_NAMES, CommunityError

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


def register(main: click.Group) -> None:
    """Add the community commands to ``nattery-cloud``."""
    main.add_command(simulate)
