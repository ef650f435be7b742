"""The inverter simulator: register image + physics + one honest RS485 line + faults.

Every request goes through the same line timing: it occupies the line for its length in
characters, the firmware thinks for ``processing_s``, the reply occupies the line for its own
length, and it is written to the link in one go when its last character would have arrived. A request that arrives before the previous reply has been
delivered plus the map's inter-frame gap is an overlap violation: counted, and answered the way
confused firmware does (``violation_reply="drop"`` or ``"corrupt"``); if it collided on the wire
with the previous exchange (while that request was still arriving or its reply was being sent),
that exchange is disturbed too (request lost, or reply garbled). All links (serial, TCP
connections) share the one line: an inverter has one RS485 port behind any gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from device.clock import Clock
from device.modbus.mapmodel import MAIN, RegisterMap
from device.simulator import frames as fr
from device.simulator.faults import Faults
from device.simulator.functions import execute
from device.simulator.image import ModbusError, RegisterImage
from device.simulator.modes import DEFAULT_MODE, ActiveMode, apply_control, recognise
from device.simulator.derived import show_flows
from device.simulator.physics import Battery, Physics, PhysicsSettings
from device.simulator.plausible import plausible_exponent, plausible_value, running_state
from device.simulator.profiles import ClearSky, Profile
from device.simulator.tou import programmes
from device.simulator.transports import LineSettings, Link, SerialLink, TcpLink

log = structlog.get_logger(__name__)

ViolationReply = Literal["drop", "corrupt"]


@dataclass
class Stats:
    """Counters since start. ``transactions``: valid requests addressed to this unit."""

    transactions: int = 0
    violations: int = 0
    disturbed: int = 0  # earlier exchanges garbled by an overlapping request
    replies: int = 0
    exceptions: int = 0  # replies carrying an exception code (refusals and injected)
    unanswered: int = 0  # requests left without a reply (faults, violations, defective)
    foreign: int = 0  # frames for another unit id (ignored, as on a shared bus)
    bytes_in: int = 0
    bytes_out: int = 0
    garbage_bytes: int = 0
    disconnects: int = 0
    functions: Counter[int] = field(default_factory=Counter)
    units: Counter[int] = field(default_factory=Counter)  # transactions by the unit id addressed
    faults: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if not isinstance(v, Counter)}
        data["functions"] = {str(k): v for k, v in sorted(self.functions.items())}
        data["units"] = {str(k): v for k, v in sorted(self.units.items())}
        data["faults"] = dict(self.faults)
        return data


@dataclass
class _Exchange:
    """A request on the line and its (possibly pending) reply."""

    link: Link
    request: fr.Request
    request_end: float
    pdu: bytes | None = None
    reply_start: float = 0.0
    deliver_at: float = 0.0
    corrupt: bool = False
    violation: bool = False
    after: _Exchange | None = None  # an earlier exchange still pending (violation replies)
    processed: bool = False
    cancelled: bool = False
    delivered: bool = False


class Simulator:
    """A simulated inverter serving ``regmap`` over serial and/or TCP links.

    ``physics``: the installation (battery, PV, load); ``faults``: fault injection, mutable at
    run time; ``baudrate``: line timing (default: the map's); ``speed``: simulated seconds per
    real second; ``processing_s``: firmware think time per request; ``violation_reply``: what an
    overlapping request gets; ``unit_id``: default the map's (its further devices answer at their
    own, ``protocol.devices``); ``step_s``: physics timer period;
    ``start_time``: simulated epoch at start (default now); ``gap_s``: the inter-frame gap the
    firmware needs (default: the map's); ``clock``: the firmware's own clock (its epoch drives
    the physics, time-of-use programmes and the lapse of a control not written again within the
    map's ``protocol.control_timeout_s``), default ``start_time`` + real time × ``speed``, so that
    a test can run the bridge and the firmware on one simulated clock.
    """

    def __init__(
        self,
        regmap: RegisterMap,
        physics: PhysicsSettings | None = None,
        faults: Faults | None = None,
        baudrate: int | None = None,
        speed: float = 1.0,
        processing_s: float = 0.005,
        violation_reply: ViolationReply = "drop",
        unit_id: int | None = None,
        step_s: float = 1.0,
        start_time: float | None = None,
        gap_s: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed: got {speed}, must be > 0")
        for name, value in (("processing_s", processing_s), ("gap_s", gap_s), ("step_s", step_s)):
            if value is not None and value < 0:
                raise ValueError(f"{name}: got {value}, must be >= 0")
        if violation_reply not in ("drop", "corrupt"):
            raise ValueError(f"violation_reply: got {violation_reply!r}, allowed: drop, corrupt")
        self.regmap = regmap
        self.settings = physics or PhysicsSettings()
        self.faults = faults or Faults()
        self.baudrate = baudrate or regmap.protocol.baudrate
        self.gap_s = regmap.protocol.gap_s if gap_s is None else gap_s
        self.processing_s = processing_s
        self.violation_reply: ViolationReply = violation_reply
        self.unit_id = unit_id or regmap.protocol.unit_id
        # every device of the map answers at its unit id (Fronius GEN24: the meter at 200)
        self.units = {**{unit: name for name, unit in regmap.protocol.devices}, self.unit_id: MAIN}
        self.step_s = step_s
        self.stats = Stats()
        self.image = RegisterImage(regmap)
        self.physics = Physics(self.settings, ClearSky(self.settings.latitude,
                                                       self.settings.longitude,
                                                       self.settings.timezone))
        self.active = ActiveMode()
        self._speed = speed
        self._clock = clock
        self._epoch = time.time() if start_time is None else start_time
        self._real0: float | None = None
        self._sim_last = self._epoch
        self._ready_at = 0.0
        self._last: _Exchange | None = None
        self._links: list[SerialLink] = []
        self._servers: list[asyncio.Server] = []
        self._connections: list[TcpLink] = []
        self._timer: asyncio.Task[None] | None = None
        self._timed_programmes = bool(programmes(regmap))
        self._power_on()
        self._written_at = self.sim_time()  # the last write: a forced control lapses without one

    # --- public state ---------------------------------------------------------------------
    @property
    def char_s(self) -> float:
        """Seconds per character at the line's settings (start + data + parity + stop bits)."""
        p = self.regmap.protocol
        return (1 + p.bytesize + (0 if p.parity == "N" else 1) + p.stopbits) / self.baudrate

    @property
    def battery(self) -> Battery:
        return self.physics.battery

    @property
    def mode(self) -> str:
        return self.active.name

    @property
    def mode_params(self) -> dict[str, float]:
        return dict(self.active.params)

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"speed: got {value}, must be > 0")
        if self._real0 is not None:  # running: integrate up to now at the old speed
            self.step()
            self._epoch = self.sim_time()
            self._real0 = self._now()
        self._speed = value

    def sim_time(self) -> float:
        """The simulated epoch (seconds) now."""
        if self._clock is not None:
            return self._clock.time()
        if self._real0 is None:
            return self._epoch
        return self._epoch + (self._now() - self._real0) * self._speed

    def summary(self) -> dict[str, Any]:
        return {**self.stats.as_dict(), "mode": self.mode, "soc_pct": round(self.battery.soc_pct, 2)}

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the clock and the physics timer (``serve_*`` call this)."""
        if self._timer is not None:
            return
        if self.settings.profile is not None:
            self.physics.source = await asyncio.to_thread(Profile.from_csv, self.settings.profile)
        self._real0 = self._now()
        self._sim_last = self._epoch
        self.step()
        self._timer = asyncio.get_running_loop().create_task(self._tick())

    async def serve_serial(self, path: str) -> None:
        """Answer on a serial device (returns once it is open)."""
        await self.start()
        p = self.regmap.protocol
        line = LineSettings(self.baudrate, p.parity, p.bytesize, p.stopbits)
        link = SerialLink(self, path, line, self._silence_s())
        link.open()
        self._links.append(link)

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0,
                        framer: Literal["rtu", "socket"] = "socket") -> int:
        """Listen on TCP (RTU frames or MBAP); returns the port (``port=0`` picks a free one)."""
        if framer not in ("rtu", "socket"):
            raise ValueError(f"framer: got {framer!r}, allowed: rtu, socket")
        await self.start()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: self._connection(framer == "rtu"), host, port)
        self._servers.append(server)
        bound = int(server.sockets[0].getsockname()[1])
        log.info("simulator_tcp_listening", host=host, port=bound, framer=framer)
        return bound

    def _connection(self, rtu: bool) -> TcpLink:
        self._connections = [c for c in self._connections if c.connected]
        link = TcpLink(self, rtu, self._silence_s())
        self._connections.append(link)
        return link

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for connection in self._connections:  # Server.wait_closed waits for them (Python >= 3.12)
            connection.disconnect(0.0)
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for link in self._links:
            await link.close()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        log.info("simulator_stopped", **self.summary())

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- physics ----------------------------------------------------------------------------
    def _power_on(self) -> None:
        exponents = {reg.scale_factor: plausible_exponent(reg) for reg in self.regmap.registers.values()
                     if reg.scale_factor is not None}
        for name, exponent in exponents.items():  # first: the values they scale depend on them
            self.image.set(name, exponent)
        for reg in self.regmap.registers.values():
            if reg.name not in exponents:
                self.image.set(reg.name, plausible_value(self.image.resolved(reg)))
        state = self.regmap.roles.get("state")
        if state is not None:
            for name in state.registers:
                self.image.set(name, running_state(self.regmap.registers[name]))
        for control in self.regmap.controls.values():  # settings the controls need, as commissioned
            for need in control.requires:
                self.image.set(need.register, need.values[0])
        apply_control(self.image, self.regmap, DEFAULT_MODE)
        self.active = recognise(self.regmap, self.image, self.local_hhmm())
        self.image.set_roles(self.physics.roles())
        show_flows(self.image, self.regmap, self.physics.flows)

    def step(self) -> None:
        """Integrate the physics up to now and show the result in the role registers."""
        now = self.sim_time()
        self.physics.step(now, now - self._sim_last, self.active.name, self.active.params)
        self._sim_last = now
        if self._timed_programmes:  # the clock moves on into another time-of-use programme
            self._recognise()
        self._lapse(now)
        self.image.set_roles(self.physics.roles())
        show_flows(self.image, self.regmap, self.physics.flows)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.step_s)
            self.step()

    # --- the line ---------------------------------------------------------------------------
    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _silence_s(self) -> float:
        # 3.5 characters end an RTU frame; a pty or TCP delivers a frame in chunks with some
        # scheduling jitter, so never less than 20 ms.
        return max(3.5 * self.char_s, 0.02)

    def on_bytes(self, received: int, garbage: int) -> None:
        self.stats.bytes_in += received
        self.stats.garbage_bytes += garbage

    def on_request(self, link: Link, request: fr.Request, arrival: float) -> None:
        ours = request.unit in self.units or request.unit == 0 or (not link.rtu and request.unit == 255)
        if not ours:
            self.stats.foreign += 1
            return
        s = self.stats
        s.transactions += 1
        s.functions[request.function] += 1
        s.units[request.unit] += 1
        self._settle(arrival)
        exchange = _Exchange(link, request, arrival + request.rtu_length * self.char_s)
        if arrival < self._ready_at:
            s.violations += 1
            log.debug("simulator_overlap", early_s=round(self._ready_at - arrival, 4))
            self._disturb(arrival, exchange.request_end)
            exchange.violation = True
            exchange.after = self._last
        self._ready_at = max(self._ready_at, exchange.request_end + self.gap_s)
        if exchange.violation and self.violation_reply == "drop":
            s.unanswered += 1
            return
        self._last = exchange
        asyncio.get_running_loop().call_at(exchange.request_end, self._process, exchange)

    def _settle(self, now: float) -> None:
        """Process the previous request if it was complete by ``now`` (its timer may be queued
        behind this very read in the loop's iteration)."""
        last = self._last
        if last is not None and last.request_end <= now:
            self._process(last)

    def _disturb(self, start: float, end: float) -> None:
        """A request on the wire during ``start..end`` garbles whatever else was on the wire."""
        last = self._last
        if last is None or last.delivered or last.cancelled:
            return
        if not last.processed:  # the previous request was still arriving: lost
            last.cancelled = True
            self.stats.disturbed += 1
            self.stats.unanswered += 1
        elif last.pdu is not None and start < last.deliver_at and end > last.reply_start:
            last.corrupt = True  # collided with the reply being sent
            self.stats.disturbed += 1

    def _process(self, exchange: _Exchange) -> None:
        """The firmware has the whole request: execute it and schedule the reply."""
        if exchange.processed or exchange.cancelled:
            return
        exchange.processed = True
        self.step()
        request = exchange.request
        pdu = self._respond(exchange.link, request)
        if pdu is None or (request.unit == 0 and exchange.link.rtu):  # silent, or RTU broadcast
            self.stats.unanswered += 1
            return
        exchange.pdu = pdu
        exchange.corrupt = exchange.violation or self._fault("corrupt_crc")
        late = self.faults.late_delay_s if self._fault("late") else 0.0
        exchange.reply_start = exchange.request_end + self.processing_s + late
        before = exchange.after
        if before is not None and before.pdu is not None and not before.delivered:
            exchange.reply_start = max(exchange.reply_start, before.deliver_at)
        exchange.deliver_at = exchange.reply_start + (len(pdu) + 3) * self.char_s
        self._ready_at = max(self._ready_at, exchange.deliver_at + self.gap_s)
        asyncio.get_running_loop().call_at(exchange.deliver_at, self._deliver, exchange)

    def _fault(self, kind: str) -> bool:
        if self.faults.fires(kind):
            self.stats.faults[kind] += 1
            return True
        return False

    def _respond(self, link: Link, request: fr.Request) -> bytes | None:
        """The reply PDU, or ``None`` when the firmware stays silent."""
        if self.faults.defective:
            self.stats.faults["defective"] += 1
            return None
        if self._fault("disconnect"):
            self.stats.disconnects += 1
            link.disconnect(self.faults.disconnect_down_s)
            return None
        if self._fault("no_reply"):
            return None
        if self._fault("exception"):
            self.stats.exceptions += 1
            return fr.exception_pdu(request.function, self.faults.exception_code)
        try:
            pdu, wrote = execute(self.image, request.pdu, self.units.get(request.unit, MAIN))
        except ModbusError as exc:
            self.stats.exceptions += 1
            log.debug("simulator_refused", function=request.function, code=exc.code, reason=str(exc))
            return fr.exception_pdu(request.function, exc.code)
        if wrote:
            self._after_write()
        return pdu

    def _lapse(self, now: float) -> None:
        """Firmware with a timeout for external control (``protocol.control_timeout_s``) falls
        back to its own operation when a forced control is not written again in time: played
        as the self-consumption control's settings put back."""
        timeout = self.regmap.protocol.control_timeout_s
        if timeout is None or self.active.name == DEFAULT_MODE or now - self._written_at < timeout:
            return
        log.info("simulator_control_lapsed", mode=self.active.name, silent_s=round(now - self._written_at, 1))
        apply_control(self.image, self.regmap, DEFAULT_MODE)
        self._recognise()

    def _after_write(self) -> None:
        self._written_at = self.sim_time()
        if self._recognise():
            self.step()  # show the new mode's flows at once

    def _recognise(self) -> bool:
        """What the registers amount to now; True if that changed."""
        before = self.active
        self.active = recognise(self.regmap, self.image, self.local_hhmm())
        if self.active != before:
            log.info("simulator_mode", mode=self.active.name, params=self.active.params)
        return self.active != before

    def local_hhmm(self) -> int:
        """The inverter's clock (local time at the installation) as HHMM."""
        local = datetime.fromtimestamp(self.sim_time(), ZoneInfo(self.settings.timezone))
        return local.hour * 100 + local.minute

    def _deliver(self, exchange: _Exchange) -> None:
        if exchange.pdu is None or not exchange.link.connected:
            self.stats.unanswered += 1
            return
        now = self._now()
        sent = exchange.link.send(exchange.request, exchange.pdu, exchange.corrupt)
        exchange.delivered = True
        self._ready_at = max(self._ready_at, now + self.gap_s)
        self.stats.replies += 1
        self.stats.bytes_out += sent
