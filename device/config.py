"""Configuration: ``device/resources/default.yaml`` ← ``/data/nattery.yaml`` ← ``NATTERY_<SECTION>_<KEY>``.

Everything is validated once, at start-up, into frozen dataclasses. Each section is a dataclass
whose fields carry their constraints (``setting(min=..., choices=...)``); the loader is generic,
so adding a setting means adding one field. Errors name the key, the value received and what is
allowed. Secrets (``secret=True``) are never echoed back in errors or in ``describe()``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common import market_ids
from common.numbers import finite_float
from device.resources import DEFAULT_FILE

INSTALLER_FILE = Path("/data/nattery.yaml")
ENV_PREFIX = "NATTERY_"


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
    secret: bool = False,
    help: str = "",
) -> Any:
    """A dataclass field with validation metadata (bounds inclusive)."""
    meta = {"min": min, "max": max, "choices": choices, "secret": secret, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: _copy(default), metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


def _copy(value: Any) -> Any:
    return yaml.safe_load(yaml.safe_dump(value))


@dataclass(frozen=True)
class DeviceSettings:
    id: str = setting("nattery-dev", help="device id; MQTT prefix and cloud identity")
    timezone: str = setting("Europe/Berlin", help="IANA zone of the home")
    latitude: float = setting(52.52, min=-90, max=90)
    longitude: float = setting(13.40, min=-180, max=180)
    data_dir: Path = setting(Path("/data"), help="persistent volume: database, installer file")
    clock_check: str = setting("floor", choices=("floor", "ntp"),
                               help="when the clock counts as synchronised: floor (after 2024) or ntp (the kernel's NTP state too)")


@dataclass(frozen=True)
class InverterSettings:
    map: str = setting("deye_hybrid_1p", help="register map: a name in device/resources/inverters or a path")
    port: str = setting(
        "serial:///dev/ttyUSB0",
        help="serial:///dev/ttyX (RTU), rtu+tcp://host:port (RTU over TCP) or tcp://host:port",
    )
    unit_id: int | None = setting(None, min=1, max=247, help="overrides the map's unit id")
    baudrate: int | None = setting(None, choices=(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))
    parity: str | None = setting(None, choices=("N", "E", "O"), help="overrides the map's parity")
    gap_ms: int | None = setting(None, min=0, max=2000,
                                 help="quiet time on the line between transactions; null: the map's")
    poll_interval_s: float = setting(5.0, min=0.2, max=3600)
    timeout_s: float | None = setting(None, min=0.05, max=30, help="per transaction; null: the map's")
    retries: int = setting(2, min=0, max=10)
    max_charge_w: int = setting(5000, min=0, max=100_000, help="installation limit, below the map's")
    max_discharge_w: int = setting(5000, min=0, max=100_000, help="installation limit, below the map's")


@dataclass(frozen=True)
class MqttSettings:
    host: str = setting("", help="broker host; empty starts a local broker (mosquitto or embedded; local runs)")
    port: int = setting(1883, min=0, max=65535, help="0 picks a free port for the local broker")
    username: str = setting("")
    password: str = setting("", secret=True)
    prefix: str = setting("nattery")
    discovery_prefix: str = setting("homeassistant", help="Home Assistant discovery; empty disables")


@dataclass(frozen=True)
class BridgeSettings:
    watchdog_s: float = setting(120.0, min=5, max=86_400, help="no command refresh → self_consumption")
    flush_interval_s: float = setting(10.0, min=0.1, max=600, help="SQLite batch interval")
    health_interval_s: float = setting(10.0, min=0.5, max=600)
    update_lock: Path = setting(
        Path("/tmp/balena/updates.lock"), help="Balena update lock, held during control sequences and forced modes"
    )


@dataclass(frozen=True)
class StoreSettings:
    path: Path | None = setting(None, help="database file; default <data_dir>/nattery.db")
    readings_retention_days: int = setting(30, min=1, max=3650)
    aggregates_retention_days: int = setting(3650, min=1, max=36500)
    forecasts_retention_days: int = setting(30, min=1, max=3650)
    plans_retention_days: int = setting(90, min=1, max=3650)
    events_retention_days: int = setting(365, min=1, max=36500)


@dataclass(frozen=True)
class CloudSettings:
    url: str = setting("", help="aggregator base URL, e.g. https://cloud.example.com; empty disables sync")
    credential: str = setting("", secret=True, help="device credential from `nattery-cloud device add`")
    readings: str = setting("raw", choices=("raw", "1min"), help="upload every reading or 1-minute means")
    batch_size: int = setting(2000, min=1, max=50_000, help="items per upload batch")
    interval_s: float = setting(30.0, min=0.1, max=86_400, help="pause between sync rounds when caught up")
    backoff_min_s: float = setting(1.0, min=0.01, max=3600, help="first retry delay after a failure")
    backoff_max_s: float = setting(300.0, min=0.01, max=86_400, help="retry delay cap (exponential, jittered)")
    timeout_s: float = setting(60.0, min=1, max=600, help="per upload request")


@dataclass(frozen=True)
class LogSettings:
    level: str = setting("info", choices=("debug", "info", "warning", "error"))
    format: str = setting("auto", choices=("auto", "json", "console"))


@dataclass(frozen=True)
class WebSettings:
    host: str = setting("0.0.0.0", help="address the local web page listens on")
    port: int = setting(80, min=0, max=65535, help="80 on the device; 0 picks a free port")
    public_overview: bool = setting(False, help="show the read-only overview without login")
    language: str = setting("auto", choices=("auto", "de", "en"), help="auto: browser's choice")
    session_lifetime_s: int = setting(7 * 86_400, min=300, max=90 * 86_400)
    login_max_failures: int = setting(5, min=1, max=100, help="per address and per user")
    login_window_s: int = setting(300, min=10, max=86_400, help="failures counted over this time")
    homeowner_password: str = setting("nattery", secret=True, help="initial; changed at first login")
    installer_password: str = setting("installer", secret=True, help="initial; changed at first login")
    prices_late_after: str = setting("14:00", help="local HH:MM after which missing prices are late")
    metrics_token: str = setting("", secret=True, help="bearer token for GET /metrics; empty: /metrics is off")


@dataclass(frozen=True)
class GridFeeWindow:
    """A time window with its own grid fee (German §14a EnWG module 3, or any time-of-use fee)."""

    start: str = setting("00:00", help="local HH:MM, inclusive")
    end: str = setting("00:00", help="local HH:MM, exclusive; before start = crosses midnight")
    fee_eur_mwh: float = setting(0.0, min=-1000, max=10_000, help="net grid fee in the window")
    months: tuple[int, ...] = setting((), help="months (1-12) the window applies in; empty: all")


@dataclass(frozen=True)
class TariffSettings:
    """The homeowner's supply contract; see device/prices/tariff.py for the formula and example."""

    markup_eur_mwh: float = setting(15.0, min=-1000, max=10_000, help="supplier markup, net")
    grid_fee_eur_mwh: float = setting(100.0, min=-1000, max=10_000, help="net grid fee outside windows")
    grid_fee_windows: tuple[GridFeeWindow, ...] = setting((), help="time-variable grid fees")
    levies_eur_mwh: float = setting(32.34, min=-1000, max=10_000, help="levies and surcharges, net")
    electricity_tax_eur_mwh: float = setting(20.5, min=0, max=10_000, help="Stromsteuer, net")
    vat_pct: float = setting(19.0, min=0, max=100)
    export: str = setting("fixed", choices=("fixed", "spot"), help="feed-in: fixed rate or spot-based")
    feed_in_eur_mwh: float = setting(79.4, min=-1000, max=10_000, help="fixed feed-in rate")
    export_fee_eur_mwh: float = setting(0.0, min=-1000, max=10_000, help="spot-based: deducted from spot")
    export_zero_when_negative: bool = setting(True, help="no feed-in payment while spot < 0")
    community_price_eur_mwh: float | None = setting(
        None, min=-1000, max=10_000, help="energy-sharing community: what it pays for exported energy; null: none")
    community_share_pct: float = setting(
        100.0, min=0, max=100, help="share of the export the community is expected to take (the rest: feed-in)")


@dataclass(frozen=True)
class BatterySettings:
    capacity_wh: float = setting(10_000.0, min=100, max=1_000_000, help="usable capacity at 100 %")
    min_soc_pct: float = setting(5.0, min=0, max=100, help="technical minimum (BMS)")
    max_soc_pct: float = setting(100.0, min=0, max=100, help="technical maximum")
    reserve_pct: float = setting(10.0, min=0, max=100, help="homeowner's backup reserve")
    max_charge_w: int = setting(5000, min=0, max=100_000, help="battery limit; inverter limits also apply")
    max_discharge_w: int = setting(5000, min=0, max=100_000)
    charge_efficiency: float = setting(0.95, min=0.5, max=1.0, help="AC → stored")
    discharge_efficiency: float = setting(0.95, min=0.5, max=1.0, help="stored → AC")


@dataclass(frozen=True)
class PlannerSettings:
    mode: str = setting(
        "auto", choices=("auto", "self_consumption", "peak_shaving", "manual", "off"),
        help="start-up mode; the homeowner changes it at runtime",
    )
    horizon_h: float = setting(24.0, min=1, max=48, help="plan at least this far ahead; the price forecast fills beyond known prices")
    degradation_eur_mwh: float = setting(20.0, min=0, max=1000, help="wear cost per MWh cycled")
    terminal_value_eur_mwh: float | None = setting(None, min=-1000, max=10_000, help="null: automatic")
    grid_charging: bool = setting(True, help="allow charging the battery from the grid")
    battery_export: bool = setting(True, help="allow discharging the battery into the grid")
    import_limit_w: int | None = setting(None, min=0, max=1_000_000, help="grid connection; null: none")
    export_limit_w: int | None = setting(None, min=0, max=1_000_000, help="feed-in limit; null: none")
    ac_limit_w: int | None = setting(None, min=0, max=1_000_000, help="inverter AC rating; null: none")
    peak_shaving_cap_w: int = setting(4000, min=0, max=1_000_000, help="import cap in peak_shaving mode")
    soc_replan_pct: float = setting(3.0, min=0.1, max=100, help="re-plan when SoC is off the plan by this")
    annual_load_kwh: float = setting(3500.0, min=0, max=1_000_000, help="cold-start load forecast")
    pv_peak_w: float = setting(8000.0, min=0, max=1_000_000, help="cold-start PV forecast (kWp x 1000)")
    pv_tilt_deg: float = setting(30.0, min=0, max=90, help="PV modules' tilt from horizontal (0 flat, 90 a facade)")
    pv_azimuth_deg: float = setting(
        180.0, min=0, max=360, help="direction the PV modules face, degrees from north clockwise (90 east, 180 south, 270 west)"
    )
    forcing_gate: bool = setting(
        True, help="auto mode: force the inverter only where it pays under the measured forecast error"
    )


@dataclass(frozen=True)
class PricesSettings:
    """Day-ahead prices and market data (device/prices/); times are market time (Europe/Brussels)."""

    source: str = setting("entsoe", choices=("entsoe", "csv"), help="entsoe needs a token; csv replays a file")
    zone: str = setting(
        "DE_LU", choices=("DE_LU", "AT", "NL", "BE", "FR", "CH", "DK_1", "DK_2", "PL", "CZ", "NO_1", "NO_2",
                          "SE_3", "SE_4", "FI", "ES", "PT", "IT_NORD", "SI", "HU"),
        help="bidding zone (entsoe-py area name)",
    )
    entsoe_token: str = setting("", secret=True, help="ENTSO-E Transparency Platform security token")
    csv_path: Path | None = setting(None, help="csv source file; null: the shipped DE-LU sample")
    fetch_after: str = setting("12:50", help="HH:MM of the first attempt for tomorrow's prices")
    stale_after: str = setting("14:00", help="HH:MM after which missing prices for tomorrow are stale")
    exaa_after: str = setting("10:20", help="HH:MM of the first attempt for the EXAA auction (DE_LU, AT)")
    exogenous: bool = setting(True, help="also fetch load, wind and solar forecasts and EXAA")
    history_days: int = setting(1460, min=7, max=3650, help="backfill this many days (forecast inputs)")
    timeout_s: float = setting(30.0, min=1, max=600, help="per ENTSO-E request")
    retry_min_s: float = setting(60.0, min=0.01, max=3600, help="first retry delay (doubles, with jitter)")
    retry_max_s: float = setting(1800.0, min=0.01, max=86_400, help="retry delay cap")
    requests_per_minute: int = setting(400, min=1, max=400, help="ENTSO-E allows 400 per minute")


@dataclass(frozen=True)
class ForecastSettings:
    """The on-device price forecast (device/forecast/)."""

    model: Path | None = setting(None, help="null: the shipped price_<zone lowercase>.tflite if any")
    horizon_h: float = setting(48.0, min=24, max=168, help="forecast at least this far ahead")


def _check_hhmm(key: str, value: str) -> tuple[int, int]:
    """``HH:MM`` as (hour, minute), or a ConfigError naming ``key``."""
    hh, _, mm = value.partition(":")
    if not (len(hh) == len(mm) == 2 and hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
        raise ConfigError(f"{key}: got {value!r}, allowed: HH:MM (00:00-23:59)")
    return int(hh), int(mm)


@dataclass(frozen=True)
class MarketSettings:
    """The home's identities in the German energy market (common/market_ids.py), for the MSCONS
    export (device/edi.py). All empty: no export; otherwise all four IDs are needed."""

    malo_id: str = setting("", help="market location (MaLo-ID): 11 digits with the BDEW check digit")
    melo_id: str = setting("", help="metering location (MeLo-ID): DE + grid operator + postcode + 20 alphanumeric")
    sender_id: str = setting("", help="sender market partner ID: 13 digits with its check digit (BDEW codes: the MaLo-ID method, GS1 and DVGW: GS1 mod-10)")
    sender_qualifier: str = setting("293", choices=("9", "293", "332"), help="9 GS1, 293 BDEW, 332 DVGW")
    receiver_id: str = setting("", help="receiver market partner ID (the metering point operator's recipient)")
    receiver_qualifier: str = setting("293", choices=("9", "293", "332"), help="9 GS1, 293 BDEW, 332 DVGW")
    export_days_back: int = setting(3, min=1, max=60, help="days before today the export (re)checks")
    schedule_cutoff: str = setting(
        "14:30", help="HH:MM Europe/Berlin: the plan for the next day is committed as its schedule then"
    )

    def __post_init__(self) -> None:
        _check_hhmm("market.schedule_cutoff", self.schedule_cutoff)
        ids = {"malo_id": self.malo_id, "melo_id": self.melo_id,
               "sender_id": self.sender_id, "receiver_id": self.receiver_id}
        if not any(ids.values()):
            return
        for key, value in ids.items():
            if not value:
                raise ConfigError(f"market.{key}: empty; set all of {', '.join(ids)} or none (no export)")
        checks: dict[str, Callable[[], str]] = {
            "malo_id": lambda: market_ids.check_malo(self.malo_id),
            "melo_id": lambda: market_ids.check_melo(self.melo_id),
            "sender_id": lambda: market_ids.check_partner(self.sender_id, self.sender_qualifier),
            "receiver_id": lambda: market_ids.check_partner(self.receiver_id, self.receiver_qualifier),
        }
        for key, check in checks.items():
            try:
                check()
            except market_ids.IdError as exc:
                raise ConfigError(f"market.{key}: {exc}") from None

    @property
    def configured(self) -> bool:
        return bool(self.malo_id)


@dataclass(frozen=True)
class Config:
    device: DeviceSettings = field(default_factory=DeviceSettings)
    inverter: InverterSettings = field(default_factory=InverterSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    log: LogSettings = field(default_factory=LogSettings)
    web: WebSettings = field(default_factory=WebSettings)
    tariff: TariffSettings = field(default_factory=TariffSettings)
    battery: BatterySettings = field(default_factory=BatterySettings)
    planner: PlannerSettings = field(default_factory=PlannerSettings)
    prices: PricesSettings = field(default_factory=PricesSettings)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    market: MarketSettings = field(default_factory=MarketSettings)

    @property
    def db_path(self) -> Path:
        return self.store.path or self.device.data_dir / "nattery.db"

    def replace(self, **sections: Mapping[str, Any]) -> Config:
        """A copy with some settings changed, validated like the files: ``replace(mqtt={"port": 0})``."""
        data = _as_dict(self)
        for name, values in sections.items():
            _merge(data, {name: dict(values)})
        return _build(Config, data, "")


def _section_types() -> dict[str, type]:
    return {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}


def load(
    files: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Load and validate the configuration.

    ``files`` defaults to the shipped defaults plus the installer's file when it exists;
    ``environ`` defaults to ``os.environ``. ``overrides`` (from command-line options) win last.
    """
    if files is None:
        files = [DEFAULT_FILE] + ([INSTALLER_FILE] if INSTALLER_FILE.exists() else [])
    data: dict[str, Any] = {}
    for path in files:
        _merge(data, _read_yaml(path))
    _merge(data, _from_environ(os.environ if environ is None else environ))
    for section, values in (overrides or {}).items():
        _merge(data, {section: dict(values)})
    return _build(Config, data, "")


# yaml.safe_load's loader in C (libyaml) when PyYAML has it: the same documents, ~10 times faster
# (a register map took 0.2-0.4 s to parse in Python, and the bridge, the app and every test load them)
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, error: type[Exception], label: str | None = None) -> Any:
    """Parse a YAML file; an unreadable or malformed file raises ``error`` naming it (``label``)."""
    label = label or str(path)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except OSError as exc:
        raise error(f"{label}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise error(f"{label}: not valid YAML: {exc}") from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = read_yaml(path, ConfigError)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """``NATTERY_INVERTER_POLL_INTERVAL_S=2`` → ``{"inverter": {"poll_interval_s": "2"}}``."""
    sections = _section_types()
    data: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section, _, key = rest.partition("_")
        if section not in sections or not key:
            raise ConfigError(
                f"environment {name}: unknown section {section!r}; "
                f"allowed: {', '.join(sorted(sections))}"
            )
        data.setdefault(section, {})[key] = _EnvValue(raw)
    return data


class _EnvValue(str):
    """A raw string from the environment, parsed according to the target field's type."""


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and _is_section(key, into):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _is_section(key: str, into: dict[str, Any]) -> bool:
    # Sections merge key by key; values that are themselves mappings (e.g. a tariff table)
    # are replaced whole, so a later file can remove entries.
    return key in _section_types()


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or 'configuration'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"{where}{unknown[0]}: unknown setting; allowed: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], data[f.name], key)
        else:
            kwargs[f.name] = _check(key, data[f.name], hints[f.name], f.metadata)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _check(key: str, value: Any, kind: Any, meta: Mapping[str, Any]) -> Any:
    shown = "<secret>" if meta.get("secret") else repr(value)
    try:
        value = _coerce(value, kind)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}: got {shown}, expected {exc}") from None
    if value is None:
        return None
    if not meta.get("secret"):
        shown = repr(value)
    low, high, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: got {shown}, allowed: {', '.join(map(str, choices))}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{key}: got {shown}, allowed: {low} to {high}")
    return value


def _coerce(value: Any, kind: Any) -> Any:
    """Convert ``value`` to ``kind``; raises with a description of what was expected."""
    if isinstance(value, _EnvValue) and kind is not str:
        value = yaml.safe_load(value) if value != "" else None
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0])
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise TypeError("true or false")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError("an integer")
    if kind is float:
        if (number := finite_float(value)) is not None:
            return number
        raise TypeError("a finite number")
    if kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise TypeError("a string")
    if kind is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
        raise TypeError("a file path")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError("a list")
        (item,) = typing.get_args(kind)[:1]
        return tuple(_coerce(v, item) for v in value)
    if origin is dict or kind is dict:
        if not isinstance(value, Mapping):
            raise TypeError("a mapping")
        return dict(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
        return _build(kind, value, "")
    raise TypeError(f"a value of type {kind}")


def _as_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _as_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_as_dict(v) for v in obj]
    return obj


def describe(config: Config) -> dict[str, Any]:
    """The effective configuration with secrets masked, for logs and the installer view."""
    result: dict[str, Any] = {}
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        result[section.name] = {
            f.name: ("<set>" if getattr(values, f.name) else "")
            if f.metadata.get("secret")
            else _jsonable(getattr(values, f.name))
            for f in dataclasses.fields(values)
        }
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    return _as_dict(value)
