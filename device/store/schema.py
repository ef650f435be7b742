"""The schema: named forward migrations, applied in order and recorded in ``schema_version``.

A migration's position in this file is its version number, so new ones are only ever appended.
"""

from __future__ import annotations

from collections.abc import Callable

from device.store.sqlite import sqlite_utils

ROLE_COLUMNS = ("soc_pct", "battery_w", "pv_w", "grid_w", "load_w")

MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = []


def migration(fn: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite_utils.Database], None]:
    """Register a forward migration; its position in this file is its version number."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def create_readings(db: sqlite_utils.Database) -> None:
    db.table("readings").create(
        {
            "id": int,
            "ts": float,
            **{c: float for c in ROLE_COLUMNS},
            "state": str,
            "data": str,  # JSON: every role and register value of the snapshot
        },
        pk="id",
    )
    db.table("readings").create_index(["ts"])


@migration
def readings_never_reuse_ids(db: sqlite_utils.Database) -> None:
    # ``readings.id`` is the sync sequence number. Without AUTOINCREMENT SQLite reuses the ids
    # of deleted rows once the table is empty (e.g. after retention pruned a device that sat in
    # a drawer for a month), which would move the sequence backwards and stall the sync.
    db.execute(
        """CREATE TABLE readings_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            soc_pct REAL, battery_w REAL, pv_w REAL, grid_w REAL, load_w REAL,
            state TEXT,
            data TEXT NOT NULL
        )"""
    )
    db.execute(
        "INSERT INTO readings_new SELECT id, ts, soc_pct, battery_w, pv_w, grid_w, load_w, state, data"
        " FROM readings"
    )
    db.execute("DROP TABLE readings")
    db.execute("ALTER TABLE readings_new RENAME TO readings")
    db.execute("CREATE INDEX idx_readings_ts ON readings (ts)")


@migration
def create_app_tables(db: sqlite_utils.Database) -> None:
    """Every table the app needs; each owner adds its queries in its section below."""
    for statement in _APP_TABLES:
        db.execute(statement)


_APP_TABLES = (
    # Quarter-hour energy, derived from readings (see ``update_energy_slots``). ``ts`` is the
    # slot start (epoch s, multiple of 900). ``covered_s`` is how much of the slot has data;
    # ``complete`` = 1 only when the slot is over and the data covers it without gaps.
    # ``source``: 'counter' (inverter energy counters) or 'power' (integrated power).
    """CREATE TABLE energy_slots (
        ts INTEGER PRIMARY KEY,
        import_wh REAL NOT NULL, export_wh REAL NOT NULL,
        charge_wh REAL NOT NULL, discharge_wh REAL NOT NULL,
        pv_wh REAL NOT NULL, load_wh REAL NOT NULL,
        samples INTEGER NOT NULL, covered_s REAL NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0, source TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    # Day-ahead prices per bidding zone; ts = delivery period start, resolution 900 or 3600 s.
    """CREATE TABLE prices (
        zone TEXT NOT NULL, ts INTEGER NOT NULL, resolution_s INTEGER NOT NULL,
        price_eur_mwh REAL NOT NULL, source TEXT NOT NULL, fetched_at REAL NOT NULL,
        PRIMARY KEY (zone, ts, source)
    )""",
    "CREATE INDEX idx_prices_ts ON prices (ts)",
    # Forecast runs: kind 'price' (EUR/MWh), 'load' / 'pv' (W mean over the slot). The latest
    # made_at per kind is current; lower/upper are an optional prediction interval.
    """CREATE TABLE forecasts (
        kind TEXT NOT NULL, made_at INTEGER NOT NULL, ts INTEGER NOT NULL,
        value REAL NOT NULL, lower REAL, upper REAL,
        PRIMARY KEY (kind, made_at, ts)
    )""",
    "CREATE INDEX idx_forecasts_ts ON forecasts (ts)",
    # Battery schedules; data is JSON {"slots": [{ts, import_w, export_w, charge_w, ...}], ...}.
    """CREATE TABLE plans (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL, reason TEXT NOT NULL, data TEXT NOT NULL
    )""",
    "CREATE INDEX idx_plans_created_at ON plans (created_at)",
    # Per-slot money: prices in EUR/MWh, amounts in EUR.
    """CREATE TABLE settlements (
        ts INTEGER PRIMARY KEY,
        import_wh REAL NOT NULL, export_wh REAL NOT NULL,
        import_price REAL, export_price REAL,
        cost_eur REAL, revenue_eur REAL,
        cost_no_battery_eur REAL, cost_self_consumption_eur REAL,
        computed_at REAL NOT NULL
    )""",
    # One row per local date (YYYY-MM-DD in the home's time zone); totals is JSON.
    """CREATE TABLE settlement_days (
        day TEXT PRIMARY KEY, totals TEXT NOT NULL, computed_at REAL NOT NULL
    )""",
    # Alerts and control actions. level: debug|info|warning|error|critical.
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL, level TEXT NOT NULL, kind TEXT NOT NULL,
        message TEXT NOT NULL, data TEXT
    )""",
    "CREATE INDEX idx_events_ts ON events (ts)",
    "CREATE INDEX idx_events_kind ON events (kind, ts)",
    # Exported EDI (MSCONS) interchanges: the exact bytes sent/uploaded, by unique name.
    """CREATE TABLE edi_files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE, created_at REAL NOT NULL,
        period_start INTEGER NOT NULL, period_end INTEGER NOT NULL,
        content TEXT NOT NULL
    )""",
    # Sync outbox for the document streams (energy, settlements, edi): one row per version of
    # a document to upload; seq is the stream's monotonic sequence number. Readings are not
    # copied here: their own id is their sequence number.
    """CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, created_at REAL NOT NULL
    )""",
    "CREATE INDEX idx_outbox_stream ON outbox (stream, seq)",
    # Per stream: the last sequence number the aggregator acknowledged.
    """CREATE TABLE sync_cursors (
        stream TEXT PRIMARY KEY, last_seq INTEGER NOT NULL, updated_at REAL NOT NULL
    )""",
)


@migration
def outbox_triggers(db: sqlite_utils.Database) -> None:
    """Queue every new version of an energy slot, settlement or EDI file for the cloud sync.

    Triggers, so the modules writing those tables need not know about sync, and the outbox row
    is written in the same transaction as the document (nothing is ever forgotten).
    """
    for stream, table, key, columns in _SYNCED_DOCUMENTS:
        data = "json_object(" + ", ".join(f"'{c}', NEW.{c}" for c in columns) + ")"
        for op in ("INSERT", "UPDATE"):
            db.execute(
                f"CREATE TRIGGER outbox_{table}_{op.lower()} AFTER {op} ON {table} BEGIN "
                f"INSERT INTO outbox (stream, key, data, created_at) "
                f"VALUES ('{stream}', NEW.{key}, {data}, (julianday('now') - 2440587.5) * 86400.0); END"
            )


_SYNCED_DOCUMENTS = (
    ("energy", "energy_slots", "ts", ("ts", "import_wh", "export_wh", "charge_wh", "discharge_wh",
                                      "pv_wh", "load_wh", "samples", "covered_s", "complete", "source")),
    ("settlements", "settlements", "ts", ("ts", "import_wh", "export_wh", "import_price",
                                          "export_price", "cost_eur", "revenue_eur",
                                          "cost_no_battery_eur", "cost_self_consumption_eur")),
    ("edi", "edi_files", "name", ("name", "created_at", "period_start", "period_end", "content")),
)


# --- prices: market series (owner: prices) ------------------------------------------------
@migration
def create_market_series(db: sqlite_utils.Database) -> None:
    """Forecast inputs published by the market: ENTSO-E day-ahead load, solar, wind onshore and
    offshore forecasts (MW) and the EXAA auction (EUR/MWh). Kept out of ``prices`` on purpose:
    ``prices`` holds what the homeowner's tariff is based on (SDAC), these are only model inputs.
    One row per zone, series and slot; a later fetch replaces the value (ENTSO-E revisions)."""
    db.execute(
        """CREATE TABLE market_series (
            zone TEXT NOT NULL, series TEXT NOT NULL, ts INTEGER NOT NULL,
            resolution_s INTEGER NOT NULL, value REAL NOT NULL, fetched_at REAL NOT NULL,
            PRIMARY KEY (zone, series, ts)
        )"""
    )


# --- sync: the store's identity (owner: store/outbox) -------------------------------------
@migration
def create_store_identity(db: sqlite_utils.Database) -> None:
    """A random id created with the store and sent with every upload: a replaced SD card is a new
    store, whose numbering the aggregator keeps apart from the old card's (otherwise the new store
    would resume at the old one's position and never upload its own first items). A store that
    already numbered items before identities existed gets "", the aggregator's name for them."""
    db.execute("CREATE TABLE store_identity (id TEXT NOT NULL)")
    db.execute(
        "INSERT INTO store_identity (id) SELECT CASE WHEN EXISTS (SELECT 1 FROM sync_cursors)"
        " OR EXISTS (SELECT 1 FROM sqlite_sequence WHERE name IN ('readings', 'outbox') AND seq > 0)"
        " THEN '' ELSE lower(hex(randomblob(16))) END"
    )


# --- web: logged-in sessions (owner: device/web/auth) -------------------------------------
@migration
def create_web_sessions(db: sqlite_utils.Database) -> None:
    """Logged-in web sessions, so an app restart (every update) logs nobody out. ``key`` is the
    SHA-256 of the cookie value (the database never holds a usable cookie); ``password`` a
    fingerprint of the account's password hash when the session began (a password set elsewhere,
    such as at hand-over, ends it)."""
    db.execute(
        """CREATE TABLE web_sessions (
            key TEXT PRIMARY KEY, csrf TEXT NOT NULL, role TEXT NOT NULL, must_change INTEGER NOT NULL,
            password TEXT NOT NULL, expires REAL NOT NULL
        )"""
    )


# --- balance: committed schedules (owner: device/schedules.py) -----------------------------
@migration
def create_schedules(db: sqlite_utils.Database) -> None:
    """The schedules this home committed to, for its balance group at the aggregator: the plan
    for a local day as it stood at the day-ahead cut-off (``kind`` 'day_ahead', revision 0), then
    every later change of the remaining slots (``intraday``, revision 1, 2, …). ``slots`` is JSON
    ``[[slot start, import Wh, export Wh], …]``. A trigger queues each for the ``schedules`` sync
    stream, keyed ``<day>/<revision>`` so that no version replaces another at the aggregator."""
    db.execute(
        """CREATE TABLE schedules (
            day TEXT NOT NULL, revision INTEGER NOT NULL, kind TEXT NOT NULL,
            created_at REAL NOT NULL, slots TEXT NOT NULL,
            PRIMARY KEY (day, revision)
        )"""
    )
    db.execute(
        "CREATE TRIGGER outbox_schedules_insert AFTER INSERT ON schedules BEGIN "
        "INSERT INTO outbox (stream, key, data, created_at) VALUES ('schedules', NEW.day || '/' || NEW.revision, "
        "json_object('ts', NEW.created_at, 'day', NEW.day, 'revision', NEW.revision, 'kind', NEW.kind, "
        "'slots', json(NEW.slots)), (julianday('now') - 2440587.5) * 86400.0); END"
    )


# --- edi: acknowledgements and reconciliation from the aggregator (owner: store/edi) -------
@migration
def create_edi_acknowledgements(db: sqlite_utils.Database) -> None:
    """What the aggregator's EDI gateway answered to each uploaded file (``state`` accepted or
    rejected, ``detail`` JSON of the errors and the CONTRL/APERAK text), and its reconciliation
    of this home's metering location: per local day and OBIS code, the device's and the official
    meter's totals (Wh) and their difference. Tables of their own, not columns of ``edi_files``:
    an update there would queue the file for upload again (its outbox trigger)."""
    db.execute(
        """CREATE TABLE edi_acks (
            name TEXT PRIMARY KEY, state TEXT NOT NULL, detail TEXT NOT NULL, acked_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE edi_reconciliation (
            day TEXT NOT NULL, obis TEXT NOT NULL, device_wh INTEGER NOT NULL, partner_wh INTEGER NOT NULL,
            diff_pct REAL, flagged INTEGER NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (day, obis)
        )"""
    )


# --- sync: prices and price forecasts (owner: store/outbox) -------------------------------
@migration
def outbox_prices_and_forecasts(db: sqlite_utils.Database) -> None:
    """Queue every cleared price and every price forecast value for the cloud sync (stream
    ``prices``), so the aggregator can judge the fleet's forecasts against what the market cleared.

    ``ts`` of such a document is when the device learned it (fetched, forecast made): a slot
    itself may lie two days ahead, beyond the clock skew the aggregator accepts for ``ts``.
    Cleared prices are keyed by zone and slot (a later fetch is a newer version), forecast
    values by the run and the slot."""
    now = "(julianday('now') - 2440587.5) * 86400.0"
    for op in ("INSERT", "UPDATE"):
        db.execute(
            f"CREATE TRIGGER outbox_prices_{op.lower()} AFTER {op} ON prices BEGIN "
            "INSERT INTO outbox (stream, key, data, created_at) VALUES ('prices', "
            "'cleared:' || NEW.zone || ':' || NEW.ts, json_object('kind', 'cleared', 'ts', NEW.fetched_at, "
            "'zone', NEW.zone, 'slot', NEW.ts, 'resolution_s', NEW.resolution_s, "
            f"'price_eur_mwh', NEW.price_eur_mwh, 'source', NEW.source), {now}); END"
        )
        db.execute(
            f"CREATE TRIGGER outbox_forecasts_{op.lower()} AFTER {op} ON forecasts WHEN NEW.kind = 'price' BEGIN "
            "INSERT INTO outbox (stream, key, data, created_at) VALUES ('prices', "
            "'forecast:' || NEW.made_at || ':' || NEW.ts, json_object('kind', 'forecast', 'ts', NEW.made_at, "
            f"'slot', NEW.ts, 'forecast_eur_mwh', NEW.value), {now}); END"
        )


# --- community: this home's energy-sharing trades from the aggregator (owner: store/community) --
@migration
def create_community_summary(db: sqlite_utils.Database) -> None:
    """The aggregator's sums of this home's community trades (``GET /v1/devices/{id}/community``)
    for the period ``today`` or ``month`` that began at ``period_start`` (epoch s, local
    midnight), one row per community: Wh sold and bought, how many neighbours, EUR received,
    paid (fee included) and saved against feed-in and import. Replaced whole by each fetch."""
    db.execute(
        """CREATE TABLE community_summary (
            period TEXT NOT NULL, community TEXT NOT NULL, period_start REAL NOT NULL, member TEXT NOT NULL,
            sold_wh INTEGER NOT NULL, bought_wh INTEGER NOT NULL, buyers INTEGER NOT NULL, sellers INTEGER NOT NULL,
            revenue_eur REAL NOT NULL, cost_eur REAL NOT NULL, saving_eur REAL NOT NULL, updated_at REAL NOT NULL,
            PRIMARY KEY (period, community)
        )"""
    )


# --- sync: prices and price forecasts (owner: store/outbox) -------------------------------
@migration
def outbox_recent_prices_only(db: sqlite_utils.Database) -> None:
    """Queue only cleared prices of slots from the last 14 days on (at the time they are
    stored): a first start backfills years of prices for the forecast's history, which no
    forecast of this device can be judged against, and must not become that many uploads."""
    now = "(julianday('now') - 2440587.5) * 86400.0"
    for op in ("INSERT", "UPDATE"):
        db.execute(f"DROP TRIGGER IF EXISTS outbox_prices_{op.lower()}")
        db.execute(
            f"CREATE TRIGGER outbox_prices_{op.lower()} AFTER {op} ON prices "
            f"WHEN NEW.ts >= {now} - {PRICES_SYNCED_BACK_S} BEGIN "
            "INSERT INTO outbox (stream, key, data, created_at) VALUES ('prices', "
            "'cleared:' || NEW.zone || ':' || NEW.ts, json_object('kind', 'cleared', 'ts', NEW.fetched_at, "
            "'zone', NEW.zone, 'slot', NEW.ts, 'resolution_s', NEW.resolution_s, "
            f"'price_eur_mwh', NEW.price_eur_mwh, 'source', NEW.source), {now}); END"
        )


PRICES_SYNCED_BACK_S = 14 * 86_400
