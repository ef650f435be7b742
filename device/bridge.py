"""The bridge process: the inverter on one side, SQLite and MQTT on the other.

It polls telemetry through the sequential Modbus worker, buffers every reading and writes them to
SQLite in batches, publishes ``telemetry``/``health`` and the LWT ``status``, executes
``cmd/<action>`` messages (validated before anything reaches the queue, verified by read-back,
answered on ``cmd/result``) and guards the inverter with a watchdog: when commands stop arriving,
and on shutdown, the inverter goes back to its own self-consumption mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import structlog

from common.crash import crash_point
from common.proc_io import written_bytes
from common.utc import format_utc
from device.clock import SYSTEM_CLOCK, Clock, within
from device.commands import MAX_AGE_S, BadCommand, caller_id, number, parse_command
from device.config import Config
from device.home_assistant_discovery import discovery_messages
from device.journal import ReadingJournal
from device.modbus.inverter import CommandError, Snapshot
from device.modbus.mapmodel import RegisterAccessError, RegisterMap
from device.mqtt import MqttSession, NotConnected, Topics
from device.store import AsyncStore, Reading, Store
from device.supervision import TaskHealth, supervise
from device.update_lock import UpdateLock

log = structlog.get_logger(__name__)

CONTROL_ACTIONS = ("self_consumption", "charge", "discharge", "hold")
OTHER_ACTIONS = ("refresh", "read_register", "write_register")
APP_ACTIONS = ("dr_event",)  # answered by the app's planner, not by the bridge
SAFE_MODE = "self_consumption"
REWRITE_RETRY_S = 1.0  # pause before a failed rewrite of the commanded control is tried again
MAX_BUFFERED = 50_000  # readings kept in memory while SQLite is unwritable (~1 day at 2 s)
REGISTER_COMMANDS_PER_CYCLE = 8  # read/write_register per telemetry poll; the rest is refused as busy
TASK_BACKOFF_MAX_S = 5.0
CRASH_VARIABLE = "TEST_BRIDGE_CRASH"  # kill -9 tests: ``flush_started:<n>`` or ``flush_committed:<n>``  # a failed bridge task (the watchdog among them) is back within seconds


class InverterPort(Protocol):
    """What the bridge needs from :class:`device.modbus.inverter.Inverter`."""

    regmap: RegisterMap
    identity_error: str | None

    @property
    def identified(self) -> bool: ...
    async def read_telemetry(self) -> Snapshot: ...
    async def read_registers(self, names: list[str]) -> dict[str, float | None]: ...
    async def write_register(self, name: str, value: float) -> datetime: ...
    def validate(self, mode: str, params: Mapping[str, Any]) -> None: ...
    async def apply(self, mode: str, **params: Any) -> datetime: ...


@dataclass
class Watchdog:
    """Tracks the commanded mode and when it lapses without a refresh."""

    timeout_s: float
    clock: Clock = SYSTEM_CLOCK
    mode: str = SAFE_MODE
    params: dict[str, Any] = field(default_factory=dict)
    expires_at: float = math.inf
    trips: int = 0
    safe_pending: bool = True  # the inverter's state is unknown until self_consumption is applied

    def commanded(self, mode: str, params: Mapping[str, Any], hold_s: float | None) -> None:
        _check_hold(hold_s)
        self.mode, self.params = mode, dict(params)
        self.safe_pending = False
        self.refresh(hold_s)

    def refresh(self, hold_s: float | None = None) -> None:
        _check_hold(hold_s)
        if self.mode == SAFE_MODE:
            self.expires_at = math.inf
            return
        lifetime = self.timeout_s if hold_s is None else min(hold_s, self.timeout_s)
        self.expires_at = self.clock.monotonic() + lifetime

    @property
    def lapsed(self) -> bool:
        return self.safe_pending or self.clock.monotonic() >= self.expires_at

    def state(self) -> dict[str, Any]:
        remaining = self.expires_at - self.clock.monotonic()
        return {
            "mode": self.mode,
            "params": self.params,
            "expires_in_s": None if math.isinf(remaining) else round(max(remaining, 0.0), 1),
            "timeout_s": self.timeout_s,
            "trips": self.trips,
            "safe_pending": self.safe_pending,
        }


def _check_hold(hold_s: float | None) -> None:
    if hold_s is not None and not math.isfinite(hold_s):  # NaN or infinity would never lapse
        raise ValueError(f"hold_s must be finite, got {hold_s!r}")


class Bridge:
    def __init__(
        self,
        cfg: Config,
        inverter: InverterPort,
        store: AsyncStore,
        *,
        worker_stats: Callable[[], Mapping[str, Any]] = dict,
        journal: ReadingJournal | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.inverter = inverter
        self.store = store
        self.worker_stats = worker_stats
        self.topics = Topics(cfg.mqtt.prefix, cfg.device.id)
        self.watchdog = Watchdog(cfg.bridge.watchdog_s, clock)
        self.mqtt = MqttSession(
            cfg.mqtt,
            client_id=f"{cfg.device.id}-bridge",
            status_topic=self.topics.status,
        )
        self.mqtt.route(self.topics.cmd_all, self._on_message, retained=self._on_retained)
        self._buffer: deque[Reading] = deque(maxlen=MAX_BUFFERED)
        self.journal = journal
        self._register_commands = 0  # since the last telemetry poll
        self._control_lock = asyncio.Lock()  # control commands apply one after another, in order
        self._control_changed = asyncio.Event()  # wakes the rewrite loop: mode, write time or lifetime changed
        self.update_lock = UpdateLock(cfg.bridge.update_lock)
        self._flush_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.tasks = TaskHealth()
        self.latest: Snapshot | None = None
        self.counters: dict[str, int] = {
            "polls": 0, "poll_failures": 0, "readings_written": 0, "readings_dropped": 0,
            "store_errors": 0, "commands": 0, "commands_failed": 0, "readings_recovered": 0,
            "journal_errors": 0, "register_commands_refused": 0, "control_rewrites": 0,
        }
        self._written_at = clock.monotonic()  # when the last write of the commanded control began
        self.last_poll: float | None = None
        self.started_at = clock.time()

    # --- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Run until cancelled. Call :meth:`shutdown` before cancelling (``services.lifecycle.run_until`` does):
        it needs the worker and the MQTT session still running. A task that fails is restarted
        (after at most ``TASK_BACKOFF_MAX_S``) and counted on ``health``."""
        self.update_lock.clear_stale()
        await self.recover_journal()
        jobs = {
            "mqtt": self.mqtt.run, "poll": self._poll_loop, "flush": self._flush_loop,
            "health": self._health_loop, "watchdog": self._watchdog_loop, "discovery": self._discovery_once,
            "rewrite": self._rewrite_loop,
        }
        async with asyncio.TaskGroup() as group:
            for name, job in jobs.items():
                group.create_task(supervise(name, job, backoff_max_s=TASK_BACKOFF_MAX_S, record=self.tasks),
                                  name=name)

    async def recover_journal(self) -> None:
        """Store the readings a crash left in the journal (those not stored yet), then clear it."""
        if self.journal is None:
            return
        recovered = await self.journal.recover()
        if recovered:
            written = await self.store.call(Store.insert_missing_readings, recovered)
            self.counters["readings_recovered"] += written
            log.warning("readings recovered from the journal after a crash", journalled=len(recovered),
                        stored=written)
        await self.journal.clear()

    async def shutdown(self, timeout_s: float = 15.0) -> None:
        """What every exit does (SIGTERM on a Balena update): safe mode, last readings, offline."""
        for task in list(self._tasks):
            task.cancel()
        try:
            async with asyncio.timeout(timeout_s):
                await self._go_safe("shutdown")
        except (TimeoutError, Exception) as exc:  # noqa: BLE001 — shutdown must go on
            log.error("could not return inverter to self_consumption on shutdown", error=repr(exc))
        self.update_lock.release()
        await self._flush()
        if self.journal is not None:
            await self.journal.close()
        await self.mqtt.close()

    # --- telemetry -----------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        interval = self.cfg.inverter.poll_interval_s
        next_at = self.clock.monotonic()
        while True:
            await self.poll_once()
            next_at += interval
            delay = next_at - self.clock.monotonic()
            if delay < 0:  # the cycle took longer than the interval: skip, don't pile up
                next_at = self.clock.monotonic()
                delay = 0
            await self.clock.sleep(delay)

    async def poll_once(self) -> Snapshot | None:
        try:
            snapshot = await self.inverter.read_telemetry()
            self._register_commands = 0  # telemetry had its turn: a new share for register commands
        except Exception as exc:  # noqa: BLE001 — a failed poll is a state, reported on health
            self.counters["poll_failures"] += 1
            if self.counters["poll_failures"] == 1 or self.latest is not None:
                log.warning("telemetry poll failed", error=str(exc))
            self.latest = None
            self._register_commands = 0
            return None
        self.counters["polls"] += 1
        self.last_poll = snapshot.ts
        self.latest = snapshot
        reading = Reading(snapshot.ts, snapshot.roles, snapshot.registers)
        await self._journal(reading)
        if len(self._buffer) == self._buffer.maxlen:
            self.counters["readings_dropped"] += 1
        self._buffer.append(reading)  # no await since the journal append: a flush sees both or neither
        with contextlib.suppress(NotConnected):
            await self.mqtt.publish_json(self.topics.telemetry, self.telemetry_payload(snapshot))
        return snapshot

    def telemetry_payload(self, snapshot: Snapshot) -> dict[str, Any]:
        roles: dict[str, Any] = dict(snapshot.roles)
        state = roles.get("state")
        enum = self._state_enum()
        if state is not None and enum:
            roles["state"] = enum.get(int(state), str(state))
        return {
            "ts": format_utc(snapshot.ts),
            **roles,
            "mode": self.watchdog.mode,
            "registers": dict(snapshot.registers),
        }

    def _state_enum(self) -> Mapping[int, str]:
        spec = self.inverter.regmap.roles.get("state")
        if spec is None:
            return {}
        return self.inverter.regmap.registers[spec.registers[0]].enum

    async def _flush_loop(self) -> None:
        while True:
            await self.clock.sleep(self.cfg.bridge.flush_interval_s)
            await self._flush()

    async def _journal(self, reading: Reading) -> None:
        if self.journal is None:
            return
        try:
            await self.journal.append(reading)
        except OSError as exc:  # the reading is still buffered; only its crash insurance is missing
            self.counters["journal_errors"] += 1
            log.error("journal append failed", error=str(exc))

    async def _flush(self) -> None:
        """Write the buffered readings in one batch; on failure keep them (newest first kept)."""
        async with self._flush_lock:  # the flush loop and shutdown may both get here
            if not self._buffer:
                return
            if self.journal is not None:
                await self.journal.rotate()  # the journal now holds exactly this batch …
            batch, self._buffer = self._buffer, deque(maxlen=MAX_BUFFERED)  # … (no await in between)
            crash_point(CRASH_VARIABLE, "flush_started")
            try:
                written = await self.store.call(Store.insert_readings, list(batch))
            except Exception as exc:  # noqa: BLE001 — keep the batch, try again next time
                self.counters["store_errors"] += 1
                log.error("writing readings failed; kept in memory", error=str(exc), buffered=len(batch))
                merged = [*batch, *self._buffer]  # polls went on meanwhile
                dropped = max(0, len(merged) - MAX_BUFFERED)
                self.counters["readings_dropped"] += dropped
                self._buffer = deque(merged[dropped:], maxlen=MAX_BUFFERED)
                return
            self.counters["readings_written"] += written
            crash_point(CRASH_VARIABLE, "flush_committed")
            if self.journal is not None:
                await self.journal.committed()

    # --- health ------------------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            with contextlib.suppress(NotConnected):
                await self.mqtt.publish_json(self.topics.health, self.health(), retain=True)
            await self.clock.sleep(self.cfg.bridge.health_interval_s)

    def health(self) -> dict[str, Any]:
        return {
            "ts": format_utc(),
            "uptime_s": round(self.clock.time() - self.started_at),
            "inverter_online": self.latest is not None,
            "inverter_identity": self.inverter.identity_error or ("ok" if self.inverter.identified else "unchecked"),
            "last_poll": None if self.last_poll is None else format_utc(self.last_poll),
            "readings_buffered": len(self._buffer),
            "written_bytes": written_bytes(),  # the bridge's storage writes: SD card wear
            **self.counters,
            "modbus": dict(self.worker_stats()),
            "watchdog": self.watchdog.state(),
            "mqtt": {"connects": self.mqtt.connects, "disconnects": self.mqtt.disconnects,
                     "handler_errors": self.mqtt.handler_errors},
            "tasks": self.tasks.health(),
        }

    # --- watchdog ----------------------------------------------------------------------
    async def _watchdog_loop(self) -> None:
        while True:
            if self.watchdog.lapsed:
                reason = "startup" if self.watchdog.safe_pending else "watchdog"
                try:
                    await self._go_safe(reason)
                except Exception as exc:  # noqa: BLE001 — retried next round
                    log.warning("fallback to self_consumption failed", reason=reason, error=str(exc))
            await self.clock.sleep(min(1.0, self.cfg.bridge.watchdog_s / 10))

    async def _rewrite_loop(self) -> None:
        """Keep a forced control alive on an inverter that forgets it (the map's ``refresh_s``,
        KOSTAL's and SMA's external-control timeouts): write it again, as one more control
        command through the worker's queue, every ``refresh_s`` while it is the commanded mode;
        self-consumption (a command, the watchdog, shutdown) ends it.

        It sleeps until the next write is due, or, while none is (self-consumption, a map without
        ``refresh_s``, a lapsed watchdog), until a command or the watchdog changes the control."""
        while True:
            self._control_changed.clear()  # before reading the state: a change from here on wakes the wait
            due = self._rewrite_due()
            if due is not None and due <= 0:
                try:
                    await self._rewrite()
                    continue  # due again at once if the write took longer than refresh_s
                except Exception as exc:  # noqa: BLE001 — tried again after a pause; the watchdog still guards
                    log.warning("control rewrite failed", mode=self.watchdog.mode, error=str(exc))
                    due = REWRITE_RETRY_S
            if due is None:
                await self._control_changed.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await within(self.clock, due, self._control_changed.wait())

    def _rewrite_due(self) -> float | None:
        """Seconds until the commanded control is due to be written again; ``None``: never."""
        control = self.inverter.regmap.controls.get(self.watchdog.mode)
        if control is None or control.refresh_s is None or self.watchdog.lapsed:
            return None
        return self._written_at + control.refresh_s - self.clock.monotonic()

    async def _rewrite(self) -> None:
        async with self._control_lock:
            due = self._rewrite_due()  # a command or the watchdog may have changed the mode meanwhile
            if due is None or due > 0:
                return
            mode, params, started = self.watchdog.mode, self.watchdog.params, self.clock.monotonic()
            await self.inverter.apply(mode, **params)
            self._written_at = started  # counted from the start: a slow write does not push the next one later
            self.counters["control_rewrites"] += 1
            log.debug("control written again", mode=mode)

    async def _go_safe(self, reason: str) -> None:
        async with self._control_lock:
            if not self.watchdog.lapsed and reason != "shutdown":
                return  # a fresh command arrived while we waited for the lock
            self.update_lock.acquire()
            try:
                await self.inverter.apply(SAFE_MODE)
                if reason == "watchdog":
                    self.watchdog.trips += 1
                self.watchdog.commanded(SAFE_MODE, {}, None)
                self._control_changed.set()
            finally:
                self._settle_update_lock()
            log.info("inverter in self_consumption", reason=reason)

    def _settle_update_lock(self) -> None:
        """After a control sequence: keep Balena's update lock while the inverter is forced."""
        if self.watchdog.mode == SAFE_MODE:
            self.update_lock.release()

    # --- commands ----------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes) -> None:
        action = self.topics.action_of(topic)
        if action is None or action in APP_ACTIONS or not payload:
            return  # an empty message is how MQTT clears a retained one, not a command
        task = asyncio.create_task(self._handle(action, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_retained(self, topic: str, payload: bytes) -> None:
        """A retained command is refused, answered, and cleared from the broker."""
        action = self.topics.action_of(topic)
        if action is None or action in APP_ACTIONS or not payload:
            return
        with contextlib.suppress(NotConnected):
            await self.mqtt.publish(topic, b"", retain=True, qos=1)  # an empty retained message clears it
        await self._handle(action, payload, retained=True)

    async def _handle(self, action: str, payload: bytes, *, retained: bool = False) -> None:
        self.counters["commands"] += 1
        command_id: Any = None
        try:
            command_id = caller_id(payload)
            message = parse_command(payload, now=self.clock.time(), retained=retained,
                                    max_age_s=MAX_AGE_S * self.clock.speed)
            command_id = message.pop("id")
            result = await self.execute(action, message)
            reply = {"id": command_id, "ok": True, **result}
        except (BadCommand, CommandError) as exc:
            self.counters["commands_failed"] += 1
            reply = {"id": command_id, "ok": False, "error": f"{action}: {exc}" if retained else str(exc)}
        except Exception as exc:  # noqa: BLE001 — the inverter failed; say so, don't die
            self.counters["commands_failed"] += 1
            log.warning("command failed", action=action, error=str(exc))
            reply = {"id": command_id, "ok": False, "error": f"inverter: {exc}"}
        with contextlib.suppress(NotConnected):
            await self.mqtt.publish_json(self.topics.cmd_result, reply, qos=1)

    async def execute(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one validated command; returns the extra fields of the ``cmd/result`` reply."""
        if action in CONTROL_ACTIONS:
            hold_s = _optional_positive(args.pop("hold_s", None), "hold_s")
            self.inverter.validate(action, args)  # raises before anything is queued
            async with self._control_lock:
                self.update_lock.acquire()  # an update must not cut the writes (or the forced mode) short
                try:
                    started = self.clock.monotonic()
                    applied_at = await self.inverter.apply(action, **args)
                    self.watchdog.commanded(action, args, hold_s)
                    self._written_at = started
                    self._control_changed.set()
                finally:
                    self._settle_update_lock()
            log.info("command applied", action=action, **args)
            return {"applied_at": format_utc(applied_at.timestamp())}
        if action == "refresh":
            hold_s = _optional_positive(args.pop("hold_s", None), "hold_s")
            _no_extra(action, args)
            self.watchdog.refresh(hold_s)
            self._control_changed.set()  # a lapsed control made alive again is due for rewrites again
            return {"mode": self.watchdog.mode}
        if action == "read_register":
            name = _register_name(args, self.inverter.regmap, "read")
            _no_extra(action, args, "name")
            self._take_register_share(action)
            values = await self.inverter.read_registers([name])
            return {"name": name, "value": values.get(name)}
        if action == "write_register":  # the value is checked against the register by the inverter
            name = _register_name(args, self.inverter.regmap, "write")
            value = number(args.get("value"), "write_register: 'value'")
            _no_extra(action, args, "name", "value")
            self._take_register_share(action)
            applied_at = await self.inverter.write_register(name, value)
            log.info("register written", name=name, value=args["value"])
            return {"name": name, "value": args["value"], "applied_at": format_utc(applied_at.timestamp())}
        allowed = ", ".join(CONTROL_ACTIONS + OTHER_ACTIONS)
        raise BadCommand(f"unknown action {action!r}; allowed: {allowed}")

    def _take_register_share(self, action: str) -> None:
        """Register commands outrank telemetry on the line; a flood of them must not stop it."""
        if self._register_commands >= REGISTER_COMMANDS_PER_CYCLE:
            self.counters["register_commands_refused"] += 1
            raise BadCommand(
                f"{action}: busy, {REGISTER_COMMANDS_PER_CYCLE} register commands already in this telemetry "
                f"cycle (every {self.cfg.inverter.poll_interval_s:g} s); retry after the next telemetry")
        self._register_commands += 1

    async def _discovery_once(self) -> None:
        if not self.cfg.mqtt.discovery_prefix:
            return
        for topic, payload in discovery_messages(self.cfg, self.inverter.regmap, self.topics):
            await self.mqtt.publish_retained(topic, payload, qos=0)


def _optional_positive(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        return number(value, name, above=0)
    except BadCommand:
        raise BadCommand(f"{name} must be a positive number of seconds, got {value!r}") from None


def _register_name(args: Mapping[str, Any], regmap: RegisterMap, access: Literal["read", "write"]) -> str:
    try:
        return regmap.register(args.get("name"), access).name
    except RegisterAccessError as exc:
        raise BadCommand(f"'name': {exc}") from None


def _no_extra(action: str, args: Mapping[str, Any], *allowed: str) -> None:
    extra = sorted(set(args) - set(allowed))
    if extra:
        raise BadCommand(f"{action}: unexpected field {extra[0]!r}; allowed: {', '.join(allowed) or 'none'}")
