"""The ``nattery`` command: a thin layer over the library.

Each command loads the configuration, calls into the library and turns known errors into a
one-line reason with a non-zero exit status.
"""

from __future__ import annotations

import os

# Before numpy is imported anywhere: multi-threaded OpenBLAS made the forecast's daily refit
# 10-30x slower on a busy two-core machine (threads fighting the bridge and the web page).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from common import logs
from device import config as configuration
from device.modbus.client import PortError
from device.modbus.registermap import MapError
from device.store import StoreError

F = TypeVar("F", bound=Callable[..., Any])
LOCAL_DATA_DIR = "data"  # local runs: ./data (a device has its /data volume)
KNOWN_ERRORS = (configuration.ConfigError, MapError, PortError, StoreError, OSError)


def config_option(fn: F) -> F:
    """``--config FILE`` (an installer file in place of /data/nattery.yaml)."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Installer configuration file (default /data/nattery.yaml when present).",
    )(fn)


def load_config(config_file: Path | None, **overrides: dict[str, Any]) -> configuration.Config:
    files = None if config_file is None else [configuration.DEFAULT_FILE, config_file]
    try:
        cfg = configuration.load(files, overrides={k: v for k, v in overrides.items() if v})
    except configuration.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(cfg.log.level, cfg.log.format)
    return cfg


def data_dir_option(fn: F) -> F:
    """``--data-dir DIR`` for commands that read the store."""
    return click.option(
        "--data-dir", type=click.Path(path_type=Path, file_okay=False),
        help=f"Data directory holding the store (default: ./{LOCAL_DATA_DIR}, where `nattery run` keeps "
             "it, when it holds one; else device.data_dir, as on the device).",
    )(fn)


def with_store(cfg: configuration.Config, data_dir: Path | None) -> configuration.Config:
    """The configuration pointed at an existing store; no store is a one-line error, never a new one."""
    places = [data_dir] if data_dir is not None else [Path(LOCAL_DATA_DIR), cfg.device.data_dir]
    tried = [cfg.replace(device={"data_dir": str(place.resolve())}) for place in places]
    for candidate in tried:
        if candidate.db_path.is_file():
            return candidate
    looked = " or ".join(dict.fromkeys(str(c.db_path) for c in tried))
    raise click.ClickException(
        f"no store at {looked}: give --data-dir, or start `nattery run --simulate` (or the device) first")


def serve_until_signal(
    service: Callable[[configuration.Config, asyncio.Event], Awaitable[None]], cfg: configuration.Config
) -> None:
    """Run a long-lived service until SIGTERM (Balena stopping the container) or Ctrl-C."""
    from device.services.lifecycle import stop_on_signals

    async def serve() -> None:
        await service(cfg, stop_on_signals())

    run_async(serve())


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine; known errors become a one-line reason and exit status 1."""
    try:
        return asyncio.run(main)
    except KNOWN_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    except BaseExceptionGroup as group:  # a task of a TaskGroup failed (the others were cancelled)
        known, others = group.split(KNOWN_ERRORS)
        if known is None or others is not None:
            raise
        raise click.ClickException(str(_first_leaf(known))) from None
    except KeyboardInterrupt:
        return None


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nattery")
def main() -> None:
    """nattery: home-battery appliance (Modbus bridge, planner, local web page, cloud sync)."""



@main.command()
@config_option
@click.option("--map", "map_name", help="Register map: a name in device/resources/inverters or a file "
              "(default: the configured inverter.map).")
@click.option("--listen", help="Serve TCP on tcp://HOST:PORT.")
@click.option("--framer", type=click.Choice(["socket", "rtu"]), default="socket", show_default=True,
              help="On TCP: Modbus TCP (MBAP) or RTU frames over TCP.")
@click.option("--serial", "serial_path", help="Serve Modbus RTU on this serial device or pty.")
@click.option("--baud", type=int, help="Line speed for the timing (default: the map's).")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated seconds per real second.")
@click.option("--processing-ms", type=float, default=5.0, show_default=True,
              help="Firmware think time per request.")
@click.option("--gap-ms", type=float, help="Quiet time the firmware needs between frames "
              "(default: the map's).")
@click.option("--violation-reply", type=click.Choice(["drop", "corrupt"]), default="drop",
              show_default=True, help="What an overlapping request gets.")
@click.option("--fault", "fault_specs", multiple=True, metavar="KIND[:ARGS]",
              help="no_reply|exception|corrupt_crc|late|disconnect[:P or p=,next=,code=,delay=,"
                   "down=] or defective; repeatable, e.g. --fault no_reply:0.05.")
@click.option("--soc", type=float, default=50.0, show_default=True, help="Initial SoC (%).")
@click.option("--profile", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="15-minute CSV (timestamp_utc, load_kw, pv_kw_per_kwp) in place of the clear-sky day.")
@click.option("--summary-s", type=float, default=30.0, show_default=True,
              help="Seconds between summary log lines.")
def simulate(config_file: Path | None, map_name: str | None, listen: str | None, framer: str,
             serial_path: str | None, baud: int | None, speed: float, processing_ms: float,
             gap_ms: float | None, violation_reply: str, fault_specs: tuple[str, ...], soc: float,
             profile: Path | None, summary_s: float) -> None:
    """Serve a simulated inverter (any register map) over TCP or a serial device."""
    from device.modbus.registermap import load_map
    from device.simulator import Faults, PhysicsSettings, Simulator, parse_fault
    from device.simulator.service import parse_listen, serve

    cfg = load_config(config_file)
    try:
        regmap = load_map(map_name or cfg.inverter.map)
        if listen is not None:
            parse_listen(listen)
        elif serial_path is None:
            raise ValueError("give --listen tcp://HOST:PORT or --serial PATH (or both)")
        faults = Faults()
        for spec in fault_specs:
            parse_fault(spec, faults)
        physics = PhysicsSettings(
            initial_soc_pct=soc, profile=profile, latitude=cfg.device.latitude,
            longitude=cfg.device.longitude, timezone=cfg.device.timezone)
        sim = Simulator(regmap, physics=physics, faults=faults, baudrate=baud, speed=speed,
                        processing_s=processing_ms / 1000,
                        gap_s=None if gap_ms is None else gap_ms / 1000,
                        violation_reply="corrupt" if violation_reply == "corrupt" else "drop")
    except (MapError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    run_async(serve(sim, listen=listen, framer="rtu" if framer == "rtu" else "socket",
                    serial=serial_path, summary_s=summary_s))


@main.group()
def maps() -> None:
    """Register maps: check a map file before shipping it or pointing inverter.map at it."""


@maps.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
def maps_check(files: tuple[Path, ...]) -> None:
    """Check register maps (default: every shipped map): schema, address overlaps, roles,
    controls writing writable registers, identity, sources, sane ranges, ascending programme
    times.

    Prints one line per problem (file: entry: reason) and exits 1 if there is any.
    """
    from device.modbus.mapcheck import check_files

    results = check_files(list(files) or None)
    problems = [line for lines in results.values() for line in lines]
    for line in problems:
        click.echo(line)
    if problems:
        raise SystemExit(1)
    click.echo(f"{len(results)} map{'s' if len(results) != 1 else ''} ok: "
               + ", ".join(path.name for path in results))


@main.command()
@config_option
@click.option("--port", "port_url", metavar="URL", help="Inverter port (default: the configured "
              "inverter.port), e.g. serial:///dev/ttyUSB0 or rtu+tcp://HOST:PORT.")
@click.option("--map", "map_names", multiple=True, metavar="NAME|FILE",
              help="Only try this register map (repeatable; default: every shipped map).")
@click.option("--scan-units", metavar="RANGE", help="Unit ids to try, e.g. 1-10 or 1,3 "
              "(default: inverter.unit_id, else each map's own).")
@click.option("--scan-bauds", metavar="LIST", help="Baud rates to try, e.g. 9600,19200 "
              "(default: inverter.baudrate, else each map's own).")
@click.option("--scan-timeout", type=click.FloatRange(0.01, 30), default=0.5, show_default=True,
              help="Seconds to wait for each scan reply.")
@click.option("--write-test", type=click.Choice(["rewrite", "self-consumption", "skip"]), default="rewrite",
              show_default=True, help="Rewrite a setting with its own value, or apply the safe "
              "self-consumption mode; verified by read-back.")
@click.option("--write-register", metavar="NAME", help="Setting for --write-test rewrite "
              "(default: the map's first read/write register).")
@click.option("--write-config", is_flag=True, help="Write the found inverter.map/port/unit_id "
              "into the installer file (only if commissioning passed).")
@click.option("--tariff", "tariff_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="YAML file with the homeowner's tariff settings; written into the installer file.")
@click.option("--market", "market_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="YAML file with the market identities (MaLo-ID, MeLo-ID, sender and receiver IDs); "
              "checked, then written into the installer file.")
@click.option("--homeowner-password", is_flag=True, help="Prompt for the homeowner's web password "
              "(never echoed) and store it in the web users file.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data volume holding nattery.yaml and the web files (default: device.data_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def commission(config_file: Path | None, port_url: str | None, map_names: tuple[str, ...],
               scan_units: str | None, scan_bauds: str | None, scan_timeout: float, write_test: str,
               write_register: str | None, write_config: bool, tariff_file: Path | None,
               market_file: Path | None, homeowner_password: bool, data_dir: Path | None, as_json: bool) -> None:
    """Installer: find the inverter, check every value, test a harmless write, hand over.

    Stop the bridge service first: only one process may talk on the serial line.
    Exits non-zero if anything failed; the report says what.
    """
    import json

    from device import commission as com
    from device.modbus.client import parse_port
    from device.modbus.registermap import available_maps, load_map

    if config_file is None and data_dir is not None and (data_dir / com.INSTALLER_FILE_NAME).exists():
        config_file = data_dir / com.INSTALLER_FILE_NAME
    cfg = load_config(config_file)
    data_dir = data_dir or cfg.device.data_dir
    try:
        port = str(parse_port(port_url or cfg.inverter.port))
        maps = [load_map(m) for m in map_names or available_maps()]
        units = com.parse_units(scan_units) if scan_units else (
            [cfg.inverter.unit_id] if cfg.inverter.unit_id else None)
        bauds = com.parse_bauds(scan_bauds) if scan_bauds else (
            [cfg.inverter.baudrate] if cfg.inverter.baudrate else None)
        tariff = com.load_section(tariff_file, "tariff") if tariff_file else None
        market = com.load_section(market_file, "market") if market_file else None
        password = None
        if homeowner_password:
            password = click.prompt("Homeowner password", hide_input=True, confirmation_prompt=True, err=True)
            com.check_password(password)
        report = run_async(com.commission(
            cfg, maps, port=port, data_dir=data_dir,
            installer_file=config_file or data_dir / com.INSTALLER_FILE_NAME, units=units, bauds=bauds,
            scan_timeout_s=scan_timeout, write="self_consumption" if write_test == "self-consumption" else
            "rewrite" if write_test == "rewrite" else "skip", write_register=write_register,
            write_config=write_config, tariff=tariff, market=market, password=password))
    except (MapError, PortError, ValueError, com.CommissionError) as exc:
        raise click.ClickException(str(exc)) from None
    if report is None:  # interrupted
        raise SystemExit(130)
    click.echo(json.dumps(report.as_json()) if as_json else com.render_text(report))
    if not report.ok:
        more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise click.ClickException(f"commissioning failed: {report.problems[0]}{more}")


def cloud_option(fn: F) -> F:
    """``--cloud URL``: sync to this aggregator (sets ``cloud.url``; credential from the config)."""
    return click.option("--cloud", "cloud_url", metavar="URL",
                        help="Cloud aggregator URL (overrides cloud.url; e.g. http://127.0.0.1:8080).")(fn)


@main.command()
@config_option
@cloud_option
@data_dir_option
@click.option("--drain", is_flag=True, help="Upload everything pending, then exit.")
def sync(config_file: Path | None, cloud_url: str | None, data_dir: Path | None, drain: bool) -> None:
    """Upload the local store to the cloud aggregator (until stopped, or --drain)."""
    import json

    from device.sync import run_sync

    cfg = with_store(load_config(config_file, cloud={"url": cloud_url} if cloud_url else {}), data_dir)
    try:
        stats = run_async(run_sync(cfg, drain=drain))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if drain and stats is not None:
        click.echo(json.dumps(stats))



@main.command()
@config_option
def bridge(config_file: Path | None) -> None:
    """Balena service `bridge`: own the serial line; telemetry, commands and watchdog over MQTT."""
    from device.services.bridge import run_bridge

    serve_until_signal(run_bridge, load_config(config_file))


@main.command()
@config_option
def app(config_file: Path | None) -> None:
    """Balena service `app`: prices, forecast, planner, controller, web page and cloud sync."""
    from device.app import run_app

    serve_until_signal(run_app, load_config(config_file))


@main.command()
@config_option
@cloud_option
@click.option("--simulate", is_flag=True, help="Use the built-in inverter simulator (local runs, demos).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True, max=3600), default=1.0, show_default=True,
              help="With --simulate: simulated seconds per real second; the whole appliance runs on this "
                   "demo time (at 60 a day, with its plans and savings, passes in 24 minutes).")
@click.option("--start", "start_at", metavar="[YYYY-MM-DD]HH:MM",
              help="With --simulate: the demo starts at this local time (today's date unless given), "
                   "e.g. 17:00 to watch the evening peak.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help=f"Where the database lives (default ./{LOCAL_DATA_DIR} for local runs).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port of the local web page (0 picks a free one).")
def run(config_file: Path | None, cloud_url: str | None, simulate: bool, speed: float, start_at: str | None,
        data_dir: Path | None, port: int) -> None:
    """Everything in one process: broker (embedded unless configured), bridge and app."""
    from device.services.local import local_config, run_simulated

    if not simulate:
        raise click.ClickException("only --simulate is supported by `run`; on a device use `bridge` and `app`")
    cfg = local_config(
        load_config(config_file, cloud={"url": cloud_url} if cloud_url else {}, web={"port": port}),
        data_dir or Path(LOCAL_DATA_DIR),
    )
    start = None if start_at is None else demo_start(start_at, cfg.device.timezone)
    serve_until_signal(functools.partial(run_simulated, speed=speed, start=start), cfg)


def demo_start(text: str, timezone: str) -> float:
    """``--start``: ``HH:MM`` today or ``YYYY-MM-DD HH:MM`` (also with ``T``), local time → epoch seconds."""
    tz = ZoneInfo(timezone)
    try:
        if len(text) <= 5:
            clock = dt_time.fromisoformat(text.zfill(5))
            local = datetime.combine(datetime.now(tz).date(), clock, tz)
        else:
            local = datetime.fromisoformat(text).replace(tzinfo=tz)
    except ValueError:
        raise click.BadParameter(f"got {text!r}, allowed: HH:MM or YYYY-MM-DD HH:MM (local time)",
                                 param_hint="--start") from None
    return local.timestamp()


@main.command()
@config_option
@click.option("--soc", type=click.FloatRange(0, 100), help="State of charge (%) to plan from "
              "(default: the newest reading).")
@click.option("--mode", type=click.Choice(["auto", "self_consumption", "peak_shaving", "off"]),
              help="Plan in this mode (default: the homeowner's mode, or a running manual override).")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as one JSON object.")
def plan(config_file: Path | None, soc: float | None, mode: str | None, data_dir: Path | None,
         as_json: bool) -> None:
    """Show the battery plan for now from the stored prices and forecasts and the homeowner's
    settings (sends nothing)."""
    import json
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from device.home.effective import EffectiveSettings
    from device.replanning import preview
    from device.store import AsyncStore

    cfg = with_store(load_config(config_file), data_dir)

    async def show() -> Any:
        async with AsyncStore(cfg.db_path) as store:
            return await preview(await EffectiveSettings.open(cfg), store, soc, mode)

    result = run_async(show())
    data = result.to_json()
    if as_json:
        click.echo(json.dumps(data))
        return
    zone = ZoneInfo(cfg.device.timezone)
    click.echo(f"mode {data['mode']}, {len(data['slots'])} slots, solved in {data['solve_ms']} ms")
    for note in data["compromises"]:
        click.echo(f"note: {note}")
    click.echo("local time        import ct/kWh  load W   PV W  setpoint             SoC %")
    for slot in data["slots"]:
        when = datetime.fromtimestamp(slot["ts"], zone).strftime("%a %d %H:%M")
        action = slot["action"] or "-"
        setpoint = f"{action} {slot['power_w']} W" if action in ("charge", "discharge") else action
        click.echo(f"{when:16s} {slot['import_price'] / 10:13.2f} {slot['load_w']:7d} {slot['pv_w']:6d}  "
                   f"{setpoint:20s} {slot['soc_pct']:5.1f}")


@main.group()
def edi() -> None:
    """Market communication files (EDI@Energy MSCONS)."""


@edi.command("export")
@config_option
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Local day (YYYY-MM-DD) to export.")
@data_dir_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=".",
              show_default=True, help="Directory the day's files are written to.")
def edi_export(config_file: Path | None, day: Any, data_dir: Path | None, out_dir: Path) -> None:
    """Export a finished day's quarter-hour energy as an MSCONS interchange (stored and queued for the
    cloud like the daily export; a new file only when the day changed) and write the day's files."""
    from device.edi import ExportError, export_day, file_prefix
    from device.store import AsyncStore

    cfg = with_store(load_config(config_file), data_dir)

    async def export() -> list[dict[str, Any]]:
        async with AsyncStore(cfg.db_path) as store:
            await store.call(export_day, cfg.market, day.date(), cfg.device.timezone)
            return await store.call(lambda s: s.edi_files(file_prefix(cfg.market, day.date())))

    try:
        files = run_async(export())
    except ExportError as exc:
        raise click.ClickException(str(exc)) from None
    if not files:
        raise click.ClickException(f"day {day.date().isoformat()}: no measured quarter-hour in the store, nothing to export")
    out_dir.mkdir(parents=True, exist_ok=True)
    for row in files:
        path = out_dir / row["name"]
        path.write_bytes(row["content"].encode("latin-1"))  # UNOC is ISO 8859-1; ours is ASCII
        click.echo(str(path))


@main.command()
@config_option
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), help="Delivery day (default: tomorrow, market time).")
@click.option("--json", "as_json", is_flag=True, help="Print the day as one JSON object.")
def prices(config_file: Path | None, day: Any, as_json: bool) -> None:
    """Fetch one day's prices from the configured source and print them (checks token and zone)."""
    import datetime as dt
    import json
    from zoneinfo import ZoneInfo

    from device.market import MARKET_TZ
    from device.prices.source import FetchError
    from device.prices.sources import fetch_day

    cfg = load_config(config_file)
    when = day.date() if day else dt.datetime.now(ZoneInfo(MARKET_TZ)).date() + dt.timedelta(days=1)
    try:
        got = run_async(fetch_day(cfg.prices, when))
    except (FetchError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"zone": cfg.prices.zone, "day": when.isoformat(), "state": got.state,
                               "resolution_s": got.resolution_s, "expected": got.expected,
                               "slots": [[ts, v] for ts, v in got.slots]}))
    else:
        click.echo(f"{cfg.prices.zone} {when}: {got.state}, {len(got.slots)}/{got.expected} slots "
                   f"of {got.resolution_s // 60} min ({cfg.prices.source})")
        for ts, v in got.slots:
            local = dt.datetime.fromtimestamp(ts, ZoneInfo(MARKET_TZ)).strftime("%H:%M")
            click.echo(f"  {local}  {v:8.2f} EUR/MWh")
    if not got.complete:
        raise SystemExit(1)
