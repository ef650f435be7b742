"""The one task that talks to the inverter: a priority queue drained one transaction at a time.

Inverter firmware breaks under concurrent Modbus requests, and RTU frames carry no transaction
id, so a late reply to a timed-out request looks exactly like the answer to the next one. Every
request therefore goes through :meth:`ModbusWorker.submit`; one asyncio task owns the client
and, strictly one transaction at a time:

- serves CONTROL before ONDEMAND before TELEMETRY, FIFO within a priority, so a write waits for
  at most the transaction in flight, never behind a backlog of polling; at most ``max_queued``
  requests wait per priority, a request beyond that is refused at once with :class:`QueueFull`;
- drops requests whose deadline passed before sending them;
- keeps the line quiet between frames (:mod:`device.modbus.line_guard`: the map's gap after
  every transaction, and after a timeout or a mismatched reply until a late reply is over);
- checks each reply against its request (function code, register count, write echo);
- sends each request to the map's unit id, or to the request's own (another device behind the
  same link, such as Fronius GEN24's meter at unit 200): still one transaction at a time;
- retries timeouts, corrupt and mismatched replies with capped exponential backoff, never
  Modbus exception replies (an illegal address stays illegal);
- while the adapter is gone (:mod:`device.modbus.link` reopens it, noticed within
  ``LINK_CHECK_S`` even when idle), requests fail at once with :class:`LinkDown`;
- while the inverter is backed off as defective (:mod:`device.modbus.defective`), requests
  fail at once with :class:`InverterDefective` and only probes go out.

Only state transitions are logged; everything else is counted in :meth:`ModbusWorker.stats` for
``health``. The request and error types live in ``device.modbus.requests``.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any, overload

import structlog
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from common.backoff import Backoff
from common.utc import format_utc
from device.clock import SYSTEM_CLOCK, Clock
from device.modbus.client import ClientFactory
from device.modbus.defective import DefectiveTracker
from device.modbus.latency import LatencyHistogram
from device.modbus.line_guard import LineGuard
from device.modbus.link import Link
from device.modbus.mapmodel import Protocol
from device.modbus.requests import (
    CorruptReply, DeadlineExpired, ExceptionReply, InverterDefective, LinkDown, ModbusError,
    Priority, QueueFull, ReadRequest, Request, RequestTimeout, StaleReply, WorkerStopped, WriteRequest,
    describe,
)

__all__ = [  # callers import the request and error types from here, with the worker
    "CorruptReply", "DeadlineExpired", "ExceptionReply", "InverterDefective", "LinkDown",
    "ModbusError", "ModbusWorker", "Priority", "QueueFull", "ReadRequest", "Request", "RequestTimeout",
    "StaleReply", "WorkerStopped", "WriteRequest",
]

log = structlog.get_logger(__name__)

LINK_CHECK_S = 1.0  # how often an idle worker looks whether the adapter is still there
MAX_QUEUED = 64  # requests that may wait per priority; more are refused with QueueFull


@dataclass(order=True)
class _Item:
    priority: int
    seq: int
    request: Request = field(compare=False)
    deadline: float | None = field(compare=False)
    enqueued_at: float = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)


class ModbusWorker:
    """Owns one Modbus client; see the module docstring for the line discipline.

    ``clock`` decides deadlines, backoff, probes and the line's quiet times (monotonic), stamps
    the last success (epoch) and measures latency; tests inject one that can jump ahead.
    """

    def __init__(
        self,
        client_factory: ClientFactory,
        protocol: Protocol,
        *,
        port: str = "",
        timeout_s: float | None = None,
        retries: int = 2,
        backoff_s: float = 0.05,
        backoff_max_s: float = 1.0,
        reconnect_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        defective_after: int = 3,
        probe_s: float = 5.0,
        probe_max_s: float = 300.0,
        max_queued: int = MAX_QUEUED,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.protocol = protocol
        self.port = port
        self.timeout_s = protocol.timeout_s if timeout_s is None else timeout_s
        self.retries = retries
        self._retry = Backoff(backoff_s, backoff_max_s)  # pauses between retries of one request
        self.max_queued = max_queued
        self.clock = clock
        self.line = LineGuard(protocol.gap_s, protocol.char_s, clock)
        self.link = Link(client_factory, port=port, reconnect_s=reconnect_s, reconnect_max_s=reconnect_max_s,
                         clock=clock, trace_packet=self._on_packet, trace_pdu=self._on_pdu)
        self.inverter = DefectiveTracker(port=port, defective_after=defective_after, probe_s=probe_s,
                                         probe_max_s=probe_max_s, clock=clock)
        self._queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_error = ""
        self._depth = {p: 0 for p in Priority}
        self._errors: dict[str, int] = {}
        self._counts = {"transactions": 0, "retries": 0, "stale_replies_discarded": 0, "deadline_misses": 0}
        self.queue_wait = LatencyHistogram()
        self.transaction_time = LatencyHistogram()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker task; connecting happens in it (a missing adapter is not fatal)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="modbus-worker")

    async def stop(self) -> None:
        """Stop the task, close the client and fail whatever is still queued."""
        if self._task is not None:
            self._stopping = True
            # Python 3.11's wait_for (inside pymodbus' connect) can swallow a cancellation that
            # coincides with its result; cancel until the task is really gone.
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=0.1)
            self._task = None
        self.link.close()
        while not self._queue.empty():
            item = self._queue.get_nowait()
            self._depth[Priority(item.priority)] -= 1
            if not item.future.done():
                item.future.set_exception(WorkerStopped("modbus worker stopped"))

    async def __aenter__(self) -> ModbusWorker:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- public API ------------------------------------------------------------------------

    @overload
    async def submit(self, request: ReadRequest, priority: Priority = ..., deadline: float | None = ...) -> tuple[int, ...]: ...
    @overload
    async def submit(self, request: WriteRequest, priority: Priority = ..., deadline: float | None = ...) -> None: ...

    async def submit(
        self, request: Request, priority: Priority = Priority.ONDEMAND, deadline: float | None = None
    ) -> tuple[int, ...] | None:
        """Queue ``request`` and wait for its result: the words read, or None for a write.

        ``deadline`` is a monotonic time on :attr:`clock` after which the request is no longer
        worth sending (it then fails with :class:`DeadlineExpired`). Raises a
        :class:`ModbusError` subclass naming what went wrong; :class:`QueueFull` at once when
        ``max_queued`` requests of this priority are already waiting.
        """
        if self._task is None or self._task.done():
            raise WorkerStopped("modbus worker is not running")
        if self._depth[priority] >= self.max_queued:
            self._errors[QueueFull.kind] = self._errors.get(QueueFull.kind, 0) + 1
            raise QueueFull(f"{describe(request)}: refused, {self._depth[priority]} {priority.name.lower()} "
                            f"requests already waiting (limit {self.max_queued} per priority)")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        item = _Item(int(priority), next(self._seq), request, deadline, self.clock.monotonic(), future)
        self._depth[priority] += 1
        self._queue.put_nowait(item)
        return await future  # type: ignore[no-any-return]

    def deadline_in(self, seconds: float) -> float:
        """A deadline ``seconds`` from now on the worker's clock."""
        return self.clock.monotonic() + seconds

    @property
    def state(self) -> str:
        if not self.link.up:
            return "disconnected"
        return "defective" if self.inverter.defective else "ok"

    def stats(self) -> dict[str, Any]:
        """Figures for ``health`` (see the README's health section for the meaning of each)."""
        last_success = self.inverter.last_success
        return {
            "state": self.state,
            "port": self.port,
            "queue_depth": {p.name.lower(): self._depth[p] for p in Priority},
            **self._counts,
            "reconnects": self.link.reconnects,
            "errors": dict(sorted(self._errors.items())),
            "consecutive_failures": self.inverter.failures,
            "last_error": self._last_error or None,
            "next_probe_in_s": self.inverter.next_probe_in(),
            "last_success": None if last_success is None else format_utc(last_success),
            "latency": {"queue_wait_s": self.queue_wait.summary(),
                        "transaction_s": self.transaction_time.summary()},
        }

    # --- the task --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self.link.check()  # notice an unplugged adapter while idle, too
            if self.link.connect_due:
                if await self.link.connect():
                    self.line.hold(self.protocol.connect_pause_s)  # the map's pause after a connect
                else:
                    self._last_error = self.link.error
            # Choose the next request only once the line is free again: one chosen before the
            # gap would make a control write that arrives during the gap wait a whole extra read.
            await self.line.wait_quiet()
            timeout = LINK_CHECK_S if self.link.up else self.link.next_connect_in
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                continue
            self._depth[Priority(item.priority)] -= 1
            if item.future.done():  # the caller gave up
                continue
            try:
                await self._serve(item)
            except asyncio.CancelledError:
                if not item.future.done():
                    item.future.set_exception(WorkerStopped("modbus worker stopped"))
                raise
            except Exception as exc:  # a bug must fail one request, not silence the inverter
                log.exception("modbus_worker_error", request=describe(item.request))
                self.link.close()
                if not item.future.done():
                    item.future.set_exception(exc)

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus packet tracer: note when bytes arrive (late replies, corrupt frames)."""
        if not sending:
            self.line.received()
        return data

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus PDU tracer: a reply while nothing is outstanding is a late one it ignores."""
        if not sending and not self.line.outstanding:
            self._counts["stale_replies_discarded"] += 1
        return pdu

    # --- one request -----------------------------------------------------------------------

    async def _serve(self, item: _Item) -> None:
        self.queue_wait.add(self.clock.monotonic() - item.enqueued_at)
        probing = False
        try:
            self.link.check()
            if not self.link.up:
                raise LinkDown(f"{self.port or 'inverter port'}: link down; next reconnect in "
                               f"{self.link.next_connect_in:.1f} s ({self.link.error})")
            probing = self.inverter.admit()
            result = await self._with_retries(item, 0 if probing else self.retries)
        except ModbusError as exc:
            self._errors[exc.kind] = self._errors.get(exc.kind, 0) + 1
            if isinstance(exc, (RequestTimeout, CorruptReply, StaleReply)):
                self._last_error = str(exc)
                self.inverter.failed(str(exc), probing)
            elif isinstance(exc, ExceptionReply):
                self.inverter.alive()
            if not item.future.done():
                item.future.set_exception(exc)
            return
        self.inverter.alive()
        if not item.future.done():
            item.future.set_result(result)

    async def _with_retries(self, item: _Item, retries: int) -> tuple[int, ...] | None:
        for attempt in range(retries + 1):
            if attempt:
                self._counts["retries"] += 1
                await self.clock.sleep(self._retry.delay(attempt))
            if item.deadline is not None and self.clock.monotonic() > item.deadline:
                self._counts["deadline_misses"] += 1
                raise DeadlineExpired(f"{describe(item.request)}: deadline passed before sending")
            try:
                return await self._transact(item.request)
            except (RequestTimeout, CorruptReply, StaleReply) as exc:
                self.link.check()
                if attempt == retries or not self.link.up:
                    raise
                self._errors[exc.kind] = self._errors.get(exc.kind, 0) + 1
        raise AssertionError("unreachable")

    async def _transact(self, request: Request) -> tuple[int, ...] | None:
        client = self.link.client
        assert client is not None
        await self.line.wait_quiet()
        sent, reply = request.wire_bytes
        timeout = self.timeout_s + (sent + reply) * self.protocol.char_s
        started = self.clock.monotonic()
        self.line.begin()
        try:
            async with asyncio.timeout(timeout):
                pdu = await self._call(client, request)
        except TimeoutError:
            self.line.guard_late_reply()
            corrupt = self.line.rx_during_request
            what = "no valid reply (corrupt frame)" if corrupt else "no reply"
            error = CorruptReply if corrupt else RequestTimeout
            raise error(f"{describe(request)}: {what} within {timeout:.2f} s") from None
        except ModbusException as exc:
            self.link.check()
            if not self.link.up:
                raise LinkDown(f"{self.port or 'inverter port'}: {exc}") from None
            self.line.guard_late_reply()
            raise CorruptReply(f"{describe(request)}: {exc}") from None
        finally:
            self.line.end()
            self._counts["transactions"] += 1
            self.transaction_time.add(self.clock.monotonic() - started)
        mismatch = self._mismatch(request, pdu)
        if mismatch:
            self._counts["stale_replies_discarded"] += 1
            self.line.guard_late_reply()
            raise StaleReply(f"{describe(request)}: discarded a reply that does not match: {mismatch}")
        if pdu.isError():
            raise ExceptionReply(request, pdu.exception_code)  # type: ignore[attr-defined]
        return tuple(pdu.registers) if isinstance(request, ReadRequest) else None

    async def _call(self, client: ModbusBaseClient, request: Request) -> ModbusPDU:
        unit = self.protocol.unit_id if request.unit is None else request.unit
        if isinstance(request, WriteRequest):
            return await client.write_registers(request.address, list(request.values), device_id=unit)
        read = client.read_holding_registers if request.table == "holding" else client.read_input_registers
        return await read(request.address, count=request.count, device_id=unit)

    @staticmethod
    def _mismatch(request: Request, pdu: ModbusPDU) -> str:
        """Why ``pdu`` cannot be the answer to ``request`` ('' when it can)."""
        fc = request.function_code
        if pdu.function_code not in (fc, fc | 0x80):
            return f"function code {pdu.function_code}, expected {fc}"
        if pdu.isError():
            return ""
        if isinstance(request, ReadRequest):
            got = len(pdu.registers)
            return "" if got == request.count else f"{got} registers, expected {request.count}"
        echo = (getattr(pdu, "address", None), getattr(pdu, "count", None))
        want = (request.address, len(request.values))
        return "" if echo == want else f"write echo {echo}, expected {want}"
