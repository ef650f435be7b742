"""The SQLite store: schema, migrations and every query. No other module writes SQL.

The database lives on the SD card of a Raspberry Pi, shared by the bridge and app processes:
WAL mode so readers never block the writer, batched writes (one transaction per batch) to spare
the card, and named forward migrations recorded in ``schema_version`` so an older database is
upgraded in place and a database from a newer release is refused instead of corrupted.

``Store`` is synchronous; async code uses :class:`AsyncStore`, which runs every call on one
dedicated thread that owns the connection (the aiosqlite pattern), so the event loop never blocks.

Over the usual module size on purpose: the rule is that one module owns SQL, so every table's
queries live here, in marked sections per table (readings, energy, prices, plans, settlements,
events, sync); splitting it would spread the schema over files that must change together.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson
import sqlite_utils
import structlog

from device import energy
from device.config import StoreSettings

P = ParamSpec("P")
T = TypeVar("T")
log = structlog.get_logger(__name__)

ROLE_COLUMNS = ("soc_pct", "battery_w", "pv_w", "grid_w", "load_w")


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, corrupt file, unwritable)."""


class StoreFull(StoreError):
    """The disk stayed full after the retention policy and emergency pruning ran."""


EVENT_LEVELS = ("debug", "info", "warning", "error", "critical")
_FULL_DISK_FRACTIONS = (0.05, 0.2, 0.5)  # shares of the oldest readings deleted per retry
RESERVE_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Retention:
    """How long each kind of data is kept, in days (``StoreSettings`` in the configuration)."""

    readings_days: float = 30
    aggregates_days: float = 3650
    forecasts_days: float = 30
    plans_days: float = 90
    events_days: float = 365

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Retention:
        return cls(
            readings_days=settings.readings_retention_days,
            aggregates_days=settings.aggregates_retention_days,
            forecasts_days=settings.forecasts_retention_days,
            plans_days=settings.plans_retention_days,
            events_days=settings.events_retention_days,
        )


@dataclass(frozen=True)
class Reading:
    """One telemetry snapshot: epoch seconds, role values (``None`` = not read) and raw registers."""

    ts: float
    roles: Mapping[str, float | None]
    registers: Mapping[str, float | None]


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


class Store:
    """Synchronous access to ``nattery.db``. Use one instance per thread."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self._full_disk_depth = 0  # >0 while making room: a second full disk must not recurse
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open database ({exc})") from exc
        self.db = sqlite_utils.Database(conn)
        self._enable_wal()
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self.migrate()
        self._ensure_reserve()

    def _enable_wal(self, attempts: int = 100) -> None:
        """Switch to WAL. Changing the journal mode ignores the busy timeout, and on first boot the
        bridge and the app create the file at the same moment, so a locked database is retried."""
        for attempt in range(attempts):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise StoreError(f"{self.path}: cannot switch to WAL ({exc})") from exc
                time.sleep(0.05)

    @property
    def version(self) -> int:
        if not self.db["schema_version"].exists():
            return 0
        row = self.db.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] or 0

    def migrate(self) -> None:
        """Apply pending migrations, each in one transaction with its version record.

        The bridge and the app open the database at the same moment on every boot: each step
        takes the write lock first and reads the version under it, so every step runs once.
        """
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version "
            "(version INTEGER PRIMARY KEY, name TEXT, applied_at TEXT)"
        )
        while True:
            with self.db.conn:
                self.db.execute("BEGIN IMMEDIATE")
                current = self.version
                if current > len(MIGRATIONS):
                    raise StoreError(
                        f"{self.path}: database schema version {current} is newer than this release "
                        f"supports ({len(MIGRATIONS)}); refusing to touch it — update the software"
                    )
                if current == len(MIGRATIONS):
                    return
                name, fn = MIGRATIONS[current]
                fn(self.db)
                self.db.table("schema_version").insert(
                    {"version": current + 1, "name": name, "applied_at": _now_iso()}
                )

    def close(self) -> None:
        self.db.conn.close()

    # --- readings -----------------------------------------------------------------------
    def insert_readings(self, readings: Iterable[Reading]) -> int:
        """Insert a batch of readings in one transaction; returns how many.

        ``data`` is compact JSON (orjson: several times faster than json, and NaN becomes
        null, so the stored text is always valid JSON for the sync and the web page).
        """
        rows = [
            (
                r.ts,
                *(r.roles.get(c) for c in ROLE_COLUMNS),
                _state_text(r.roles.get("state")),
                orjson.dumps({"roles": r.roles, "registers": r.registers}, option=_ORJSON_OPTIONS).decode(),
            )
            for r in readings
        ]
        self._write(lambda: self.db.conn.executemany(_INSERT_READING, rows))
        return len(rows)

    def count_readings(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM readings").fetchone()[0])

    def latest_reading(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT ts, data FROM readings ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"ts": row[0], **json.loads(row[1])}

    # --- energy slots (owner: store/sync) -------------------------------------------------
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
            self._write(lambda: self.db.table("energy_slots").upsert_all(slots, pk="ts"))
            written += len(slots)
            start = end
        return written

    def energy_slots(self, start: float, end: float) -> list[dict[str, Any]]:
        """Stored slots with ``start <= ts < end``, oldest first."""
        return list(
            self.db.query("SELECT * FROM energy_slots WHERE ts >= ? AND ts < ? ORDER BY ts", [start, end])
        )

    # --- events and alerts (owner: store/sync; anyone may add events) ---------------------
    def add_event(
        self, level: str, kind: str, message: str, data: Mapping[str, Any] | None = None,
        ts: float | None = None,
    ) -> int:
        """Record an alert or action; ``level`` is debug|info|warning|error|critical."""
        if level not in EVENT_LEVELS:
            raise ValueError(f"event level: got {level!r}, allowed: {', '.join(EVENT_LEVELS)}")
        row = {
            "ts": time.time() if ts is None else ts, "level": level, "kind": kind,
            "message": message, "data": None if data is None else json.dumps(dict(data)),
        }
        return self._write(
            lambda: int(self.db.execute(
                "INSERT INTO events (ts, level, kind, message, data) VALUES (:ts, :level, :kind, :message, :data)", row
            ).lastrowid or 0)
        )

    def events(
        self, limit: int = 100, since: float | None = None, kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest events first; ``data`` decoded."""
        where: list[str] = ["1"]
        args: list[Any] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        rows = self.db.query(
            f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*args, limit]
        )
        return [{**r, "data": None if r["data"] is None else json.loads(r["data"])} for r in rows]

    # --- sync: sequences, outbox and cursors (owner: store/sync) --------------------------
    def readings_after(self, after_seq: int, limit: int) -> list[tuple[int, float, str]]:
        """Raw readings ``(seq, ts, data JSON)`` with ``seq > after_seq``, oldest first."""
        return self.db.execute(
            "SELECT id, ts, data FROM readings WHERE id > ? ORDER BY id LIMIT ?", [after_seq, limit]
        ).fetchall()

    def minute_readings_after(self, after_minute: int, limit: int) -> list[tuple[Any, ...]]:
        """Per-minute means ``(minute, samples, soc_pct, battery_w, pv_w, grid_w, load_w)`` of
        complete minutes (the newest reading is in a later minute) after ``after_minute``.

        The time range is bounded to ``limit`` minutes from the next reading on, so each call
        reads only what it returns, however long the backlog or the gaps in it.
        """
        row = self.db.execute(
            "SELECT min(ts), (SELECT max(ts) FROM readings) FROM readings WHERE ts >= ?", [(after_minute + 1) * 60]
        ).fetchone()
        if row[0] is None:
            return []
        first, newest = int(row[0] // 60), int(row[1] // 60)
        return self.db.execute(
            "SELECT CAST(ts / 60 AS INTEGER) AS m, count(*), "
            + ", ".join(f"avg({c})" for c in ROLE_COLUMNS)
            + " FROM readings WHERE ts >= ? AND ts < ? GROUP BY m ORDER BY m",
            [first * 60, min(first + limit, newest) * 60],
        ).fetchall()

    def outbox_after(self, stream: str, after_seq: int, limit: int) -> list[tuple[int, str, str]]:
        """Queued documents ``(seq, key, data JSON)`` of ``stream`` after ``after_seq``."""
        return self.db.execute(
            "SELECT seq, key, data FROM outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?",
            [stream, after_seq, limit],
        ).fetchall()

    def pending(self, stream: str, after_seq: int) -> tuple[int, float | None]:
        """How many items of ``stream`` wait after ``after_seq``, and the oldest one's time."""
        if stream == "readings":
            # max(id) - cursor: exact unless retention pruned inside the backlog; O(1).
            row = self.db.execute(
                "SELECT max(id), (SELECT ts FROM readings WHERE id > ? ORDER BY id LIMIT 1) FROM readings",
                [after_seq],
            ).fetchone()
            return max((row[0] or 0) - after_seq, 0), row[1]
        if stream == "readings_1min":
            row = self.db.execute(
                "SELECT min(ts), max(ts) FROM readings WHERE ts >= ?", [(after_seq + 1) * 60]
            ).fetchone()
            if row[0] is None:
                return 0, None
            return max(int(row[1] // 60) - int(row[0] // 60), 0), row[0]
        row = self.db.execute(
            "SELECT count(*), min(created_at) FROM outbox WHERE stream = ? AND seq > ?", [stream, after_seq]
        ).fetchone()
        return row[0], row[1]

    def sync_cursor(self, stream: str) -> int:
        """The last sequence number of ``stream`` the aggregator acknowledged (0: none)."""
        row = self.db.execute("SELECT last_seq FROM sync_cursors WHERE stream = ?", [stream]).fetchone()
        return 0 if row is None else row[0]

    def set_sync_cursor(self, stream: str, last_seq: int) -> None:
        row = {"stream": stream, "last_seq": last_seq, "updated_at": time.time()}
        self._write(lambda: self.db.table("sync_cursors").upsert(row, pk="stream"))

    # --- retention and a full disk (owner: store/sync) ------------------------------------
    def prune(self, now: float, retention: Retention | None = None) -> dict[str, int]:
        """Delete what the retention policy no longer keeps; returns rows deleted per table.

        Readings older than their retention go even when not yet synced (the policy is the
        installer's promise about disk use); that loss is recorded as a warning event.
        Outbox rows go once acknowledged. Deletes run in chunks so the bridge's writes
        are never blocked for long.
        """
        keep = retention or self.retention
        day = 86_400.0
        # Only a device that syncs (it has a cursor) can lose readings "before the cloud had them".
        unsynced = self.db.execute(
            "SELECT count(*) FROM readings, sync_cursors c WHERE c.stream = 'readings' AND ts < ? AND id > c.last_seq",
            [now - keep.readings_days * day],
        ).fetchone()[0]
        plan = [
            ("readings", "ts < ?", [now - keep.readings_days * day]),
            ("energy_slots", "ts < ?", [now - keep.aggregates_days * day]),
            ("settlements", "ts < ?", [now - keep.aggregates_days * day]),
            ("prices", "ts < ?", [now - keep.aggregates_days * day]),
            ("market_series", "ts < ?", [now - keep.aggregates_days * day]),
            ("settlement_days", "computed_at < ?", [now - keep.aggregates_days * day]),
            ("edi_files", "created_at < ?", [now - keep.aggregates_days * day]),
            ("forecasts", "made_at < ?", [now - keep.forecasts_days * day]),
            ("plans", "created_at < ?", [now - keep.plans_days * day]),
            ("events", "ts < ?", [now - keep.events_days * day]),
            ("outbox", "seq <= coalesce((SELECT last_seq FROM sync_cursors c WHERE c.stream = outbox.stream), 0)"
             " OR created_at < ?", [now - keep.aggregates_days * day]),
        ]
        deleted = {table: self._delete_chunked(table, where, args) for table, where, args in plan}
        if not self._full_disk_depth:
            self._ensure_reserve()
        if unsynced:
            self.add_event(
                "warning", "sync_data_pruned",
                f"{unsynced} readings older than {keep.readings_days} days were deleted before the cloud had them",
                {"readings": unsynced},
            )
        return deleted

    def _delete_chunked(self, table: str, where: str, args: list[Any], chunk: int = 20_000) -> int:
        key = "seq" if table == "outbox" else "rowid"
        total = 0
        while True:
            n = self._write(
                lambda: self.db.execute(
                    f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)",
                    [*args, chunk],
                ).rowcount
            )
            total += n
            if n < chunk:
                return total

    def relieve_full_disk(self, now: float, fraction: float) -> int:
        """Make room after SQLITE_FULL / ENOSPC; returns how many readings were deleted.

        The reserve file is released first: it gives the checkpoint room to move the WAL into
        the database, after which the WAL file is truncated (on a full card it is often the
        largest thing that can go at once). Then the retention policy runs, then the oldest
        ``fraction`` of the readings go (already synced ones first), in small transactions
        with checkpoints in between. The reserve is taken again once there is room
        (:meth:`prune`).
        """
        before = self.count_readings()
        self._release_reserve()
        self._checkpoint("TRUNCATE")
        self._full_disk_depth += 1
        try:
            for step in (lambda: self.prune(now), lambda: self._delete_oldest_readings(fraction)):
                try:
                    step()
                except (sqlite3.Error, OSError) as exc:
                    if not _is_disk_full(exc):
                        raise
                    log.warning("disk_full_pruning_incomplete", error=str(exc))
        finally:
            self._full_disk_depth -= 1
        self._checkpoint("TRUNCATE")
        return before - self.count_readings()

    def _delete_oldest_readings(self, fraction: float, chunk: int = 2000) -> None:
        left = int(self.count_readings() * fraction)
        cursor = self.sync_cursor("readings")
        synced = self.db.execute("SELECT count(*) FROM readings WHERE id <= ?", [cursor]).fetchone()[0]
        # Synced readings are safe in the cloud; unsynced ones go only when nothing else helps.
        where, args = ("WHERE id <= ?", [cursor]) if synced >= left else ("", [])
        while left > 0:
            n = min(chunk, left)
            self._write(lambda: self.db.execute(
                f"DELETE FROM readings WHERE id IN (SELECT id FROM readings {where} ORDER BY id LIMIT ?)", [*args, n]
            ))
            self._checkpoint("PASSIVE")
            left -= n

    def _checkpoint(self, mode: str) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute(f"PRAGMA wal_checkpoint({mode})")

    @property
    def _reserve_path(self) -> Path:
        return self.path.with_name(self.path.name + ".reserve")

    def _release_reserve(self) -> None:
        if not self._reserve_path.exists():
            return
        self._reserve_path.unlink()
        # ext4 reuses freed blocks only after its journal commits; syncing the directory
        # commits it, so the room is there for the pruning that follows.
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _ensure_reserve(self) -> None:
        """Keep some of the file system (a tenth, at most 8 MB) in a reserve file, released
        when the disk is full so that pruning itself has room to run. Taken only while at
        least twice that much is free, so it never causes the shortage it is meant for."""
        if self._reserve_path.exists():
            return
        try:
            fs = os.statvfs(self.path.parent)
            size = min(RESERVE_MAX_BYTES, fs.f_blocks * fs.f_frsize // 10)
            if fs.f_bavail * fs.f_frsize < 2 * size:
                return
            with self._reserve_path.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, size)
        except OSError:
            self._reserve_path.unlink(missing_ok=True)  # no room now; retried after the next pruning

    def _write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in one write transaction; on a full disk, make room and retry.

        A full SD card must not turn into a crash loop: the retention policy is applied,
        then ever larger shares of the oldest readings go, and a critical ``disk_full`` event
        records what was deleted. Only if that does not help is :class:`StoreFull` raised.
        """
        for attempt in range(len(_FULL_DISK_FRACTIONS) + 1):
            try:
                with self.db.conn:
                    self.db.execute("BEGIN IMMEDIATE")
                    return fn()
            except (sqlite3.Error, OSError) as exc:
                if self.db.conn.in_transaction:  # a failed COMMIT leaves the transaction open
                    with contextlib.suppress(sqlite3.Error):
                        self.db.conn.rollback()
                if not _is_disk_full(exc) or self._full_disk_depth:
                    raise
                if attempt == len(_FULL_DISK_FRACTIONS):
                    raise StoreFull(f"{self.path}: disk full even after pruning ({exc})") from exc
                deleted = self.relieve_full_disk(time.time(), _FULL_DISK_FRACTIONS[attempt])
                log.error("disk_full", path=str(self.path), deleted_readings=deleted, attempt=attempt + 1)
                try:
                    self._full_disk_depth += 1
                    with self.db.conn:
                        self.db.table("events").insert({
                            "ts": time.time(), "level": "critical", "kind": "disk_full",
                            "message": f"database or disk full; deleted {deleted} oldest readings to make room",
                            "data": json.dumps({"deleted_readings": deleted, "error": str(exc)}),
                        })
                except (sqlite3.Error, OSError):
                    log.warning("disk_full_event_not_recorded")
                finally:
                    self._full_disk_depth -= 1
        raise AssertionError("unreachable")

    # --- web page reads (owner: web) ---------------------------------------------------
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

    def latest_plan(self) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT id, created_at, reason, data FROM plans ORDER BY created_at DESC, id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return {"id": row[0], "created_at": row[1], "reason": row[2], **json.loads(row[3])}

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

    # --- prices, market series and price forecasts (owner: prices) ------------------------
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

    def latest_forecast_made_at(self, kind: str) -> int | None:
        row = self.db.execute("SELECT max(made_at) FROM forecasts WHERE kind = ?", [kind]).fetchone()
        return None if row[0] is None else int(row[0])


    # --- plans and settlements (owner: planner) ------------------------------------------
    def insert_plan(self, created_at: float, reason: str, data: Mapping[str, Any]) -> int:
        """Store a plan (``Plan.to_json()``); returns its id. Older plans go with retention."""
        def write() -> int:
            cursor = self.db.execute(
                "INSERT INTO plans (created_at, reason, data) VALUES (?, ?, ?)",
                [created_at, reason, json.dumps(data)],
            )
            return int(cursor.lastrowid or 0)

        return self._write(write)

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

_INSERT_READING = (
    f"INSERT INTO readings (ts, {', '.join(ROLE_COLUMNS)}, state, data)"
    f" VALUES (?, {', '.join('?' * len(ROLE_COLUMNS))}, ?, ?)"
)
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _state_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AsyncStore:
    """An async facade: one worker thread owns the connection and runs calls in order."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._store: Store | None = None

    async def open(self) -> AsyncStore:
        self._store = await self._run(Store, self.path, self.retention)
        return self

    async def _run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """Run ``Store.<method>`` on the worker: ``await store.call(Store.insert_readings, batch)``."""
        if self._store is None:
            raise StoreError("store is not open")
        store = self._store
        return await self._run(method, store, *args)

    async def housekeeping(self, interval_s: float = 300.0) -> None:
        """Background task: derive energy slots and apply the retention policy, forever."""
        while True:
            now = time.time()
            try:
                await self.call(Store.update_energy_slots, now)
                await self.call(Store.prune, now)
            except (sqlite3.Error, OSError, StoreError) as exc:
                log.error("store_housekeeping_failed", error=str(exc))
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        if self._store is not None:
            await self._run(self._store.close)
            self._store = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> AsyncStore:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
