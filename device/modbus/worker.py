"""The one task that talks to the inverter: a priority queue drained one transaction at a time.

Inverter firmware breaks under concurrent Modbus requests, and RTU frames carry no transaction
id, so a late reply to a timed-out request looks exactly like the answer to the next one. Every
request therefore goes through :meth:`ModbusWorker.submit`; one asyncio task owns the client
and, strictly one transaction at a time:

- serves CONTROL before ONDEMAND before TELEMETRY, FIFO within a priority, so a write waits for
  at most the transaction in flight, never behind a backlog of polling;
- drops requests whose deadline passed before sending them;
- keeps the map's inter-frame gap after every transaction, failed ones too, before the next
  frame goes out (the caller gets its result at once, not a gap later);
- checks each reply against its request (function code, register count, write echo) and, after
  a timeout or a mismatched reply, waits out the longest possible late reply (a maximal RTU
  frame at the line's baud rate plus the gap, extended while bytes keep arriving) before the
  next request. pymodbus ignores a reply that arrives while no request is outstanding and
  clears its receive buffer when it sends, so once the line is quiet nothing stale remains;
- retries timeouts, corrupt and mismatched replies with capped exponential backoff, never
  Modbus exception replies (an illegal address stays illegal);
- reconnects after the adapter disappears (noticed within ``LINK_CHECK_S`` even when idle),
  with a growing, capped delay; meanwhile requests fail at once with :class:`LinkDown`;
- backs off an inverter that failed ``defective_after`` requests in a row: requests fail fast
  with :class:`InverterDefective` and only one probe request goes out per (growing) interval.

Only state transitions are logged (link lost/restored, first failure, defective, recovered);
everything else is counted in :meth:`ModbusWorker.stats` for ``health``. Longer than our usual
module because the line discipline is one state machine; the request and error types live in
``device.modbus.requests``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

import structlog
from pymodbus.client.base import ModbusBaseClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from device.modbus.client import ClientFactory
from device.modbus.latency import LatencyHistogram
from device.modbus.mapmodel import Protocol
from device.modbus.requests import (
    CorruptReply, DeadlineExpired, ExceptionReply, InverterDefective, LinkDown, ModbusError,
    Priority, ReadRequest, Request, RequestTimeout, StaleReply, WorkerStopped, WriteRequest,
    describe,
)

__all__ = [  # callers import the request and error types from here, with the worker
    "CorruptReply", "DeadlineExpired", "ExceptionReply", "InverterDefective", "LinkDown",
    "ModbusError", "ModbusWorker", "Priority", "ReadRequest", "Request", "RequestTimeout",
    "StaleReply", "WorkerStopped", "WriteRequest",
]

log = structlog.get_logger(__name__)

MAX_RTU_ADU = 256  # bytes: the longest frame any Modbus RTU device may send
LINK_CHECK_S = 1.0  # how often an idle worker looks whether the adapter is still there


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

    ``clock`` (monotonic seconds) decides deadlines, backoff and probes, and measures latency;
    tests inject one that can jump ahead. ``wall_clock`` (epoch seconds) stamps last success.
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
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._factory = client_factory
        self.protocol = protocol
        self.port = port
        self.timeout_s = protocol.timeout_s if timeout_s is None else timeout_s
        self.retries = retries
        self._backoff = (backoff_s, backoff_max_s)
        self._reconnect = (reconnect_s, reconnect_max_s)
        self._probe = (probe_s, probe_max_s)
        self.defective_after = defective_after
        self.clock = clock
        self._wall = wall_clock
        self._queue: asyncio.PriorityQueue[_Item] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._client: ModbusBaseClient | None = None
        self._link_up = False
        self._ever_connected = False
        self._connect_failed = False
        self._reconnect_delay = reconnect_s
        self._next_connect_at = 0.0
        self._outstanding = False
        self._quiet_until = 0.0  # loop time before which no frame may go out (gap, late replies)
        self._guarding = False
        self._guard_until = 0.0
        self._rx_at = 0.0  # loop time of the last bytes received
        self._rx_during_request = False
        self._failures = 0
        self._last_error = ""
        self._defective = False
        self._probe_delay = probe_s
        self._next_probe_at = 0.0
        self._last_success: float | None = None
        self._depth = {p: 0 for p in Priority}
        self._errors: dict[str, int] = {}
        self._counts = {"transactions": 0, "retries": 0, "reconnects": 0,
                        "stale_replies_discarded": 0, "deadline_misses": 0}
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
        self._close_client()
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

        ``deadline`` is a time on :attr:`clock` after which the request is no longer worth
        sending (it then fails with :class:`DeadlineExpired`). Raises a :class:`ModbusError`
        subclass naming what went wrong.
        """
        if self._task is None or self._task.done():
            raise WorkerStopped("modbus worker is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        item = _Item(int(priority), next(self._seq), request, deadline, self.clock(), future)
        self._depth[priority] += 1
        self._queue.put_nowait(item)
        return await future  # type: ignore[no-any-return]

    def deadline_in(self, seconds: float) -> float:
        """A deadline ``seconds`` from now on the worker's clock."""
        return self.clock() + seconds

    @property
    def state(self) -> str:
        if not self._link_up:
            return "disconnected"
        return "defective" if self._defective else "ok"

    def stats(self) -> dict[str, Any]:
        """Figures for ``health`` (see the README's health section for the meaning of each)."""
        now = self.clock()
        return {
            "state": self.state,
            "port": self.port,
            "queue_depth": {p.name.lower(): self._depth[p] for p in Priority},
            **self._counts,
            "errors": dict(sorted(self._errors.items())),
            "consecutive_failures": self._failures,
            "last_error": self._last_error or None,
            "next_probe_in_s": round(max(0.0, self._next_probe_at - now), 3) if self._defective else None,
            "last_success": None if self._last_success is None else
            datetime.fromtimestamp(self._last_success, UTC).isoformat().replace("+00:00", "Z"),
            "latency": {"queue_wait_s": self.queue_wait.summary(),
                        "transaction_s": self.transaction_time.summary()},
        }

    # --- the task --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._check_link()  # notice an unplugged adapter while idle, too
            if not self._link_up and self.clock() >= self._next_connect_at:
                await self._connect()
            # Choose the next request only once the line is free again: one chosen before the
            # gap would make a control write that arrives during the gap wait a whole extra read.
            await self._line_quiet()
            timeout = LINK_CHECK_S if self._link_up else max(0.0, self._next_connect_at - self.clock())
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
                self._close_client()
                if not item.future.done():
                    item.future.set_exception(exc)

    async def _connect(self) -> None:
        self._close_client()
        client = self._factory(trace_packet=self._on_packet, trace_pdu=self._on_pdu)
        error = "cannot open or connect"
        try:
            ok = await client.connect()
        except Exception as exc:  # a bad device path or refused socket: keep retrying
            ok, error = False, str(exc)
        if ok and client.connected:
            self._client, self._link_up = client, True
            self._reconnect_delay = self._reconnect[0]
            if self._ever_connected:
                self._counts["reconnects"] += 1
                log.info("modbus_link_restored", port=self.port)
            elif self._connect_failed:
                log.info("modbus_link_up", port=self.port)
            self._ever_connected, self._connect_failed = True, False
            return
        client.close()
        self._last_error = f"connect: {error}"
        if not self._ever_connected and not self._connect_failed:
            log.warning("modbus_link_unavailable", port=self.port, error=error)
        self._connect_failed = True
        self._next_connect_at = self.clock() + self._reconnect_delay
        self._reconnect_delay = min(self._reconnect_delay * 2, self._reconnect[1])

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._link_up = False

    def _check_link(self) -> None:
        if self._link_up and (self._client is None or not self._client.connected):
            log.warning("modbus_link_lost", port=self.port)
            self._close_client()
            self._next_connect_at = self.clock() + self._reconnect_delay

    def _on_packet(self, sending: bool, data: bytes) -> bytes:
        """pymodbus packet tracer: note when bytes arrive (late replies, corrupt frames)."""
        if not sending:
            self._rx_at = asyncio.get_running_loop().time()
            self._rx_during_request = self._rx_during_request or self._outstanding
        return data

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus PDU tracer: a reply while nothing is outstanding is a late one it ignores."""
        if not sending and not self._outstanding:
            self._counts["stale_replies_discarded"] += 1
        return pdu

    # --- one request -----------------------------------------------------------------------

    async def _serve(self, item: _Item) -> None:
        now = self.clock()
        self.queue_wait.add(now - item.enqueued_at)
        probing = self._defective
        try:
            self._check_link()
            if not self._link_up:
                raise LinkDown(f"{self.port or 'inverter port'}: link down; next reconnect in "
                               f"{max(0.0, self._next_connect_at - now):.1f} s ({self._last_error})")
            if probing and now < self._next_probe_at:
                raise InverterDefective(
                    f"inverter not answering ({self._failures} failed requests, last: {self._last_error}); "
                    f"backed off, next probe in {self._next_probe_at - now:.1f} s")
            result = await self._with_retries(item, 0 if probing else self.retries)
        except ModbusError as exc:
            self._errors[exc.kind] = self._errors.get(exc.kind, 0) + 1
            if isinstance(exc, (RequestTimeout, CorruptReply, StaleReply)):
                self._failed(exc, probing)
            elif isinstance(exc, ExceptionReply):
                self._alive()
            if not item.future.done():
                item.future.set_exception(exc)
            return
        self._alive()
        if not item.future.done():
            item.future.set_result(result)

    async def _with_retries(self, item: _Item, retries: int) -> tuple[int, ...] | None:
        for attempt in range(retries + 1):
            if attempt:
                self._counts["retries"] += 1
                await asyncio.sleep(min(self._backoff[0] * 2 ** (attempt - 1), self._backoff[1]))
            if item.deadline is not None and self.clock() > item.deadline:
                self._counts["deadline_misses"] += 1
                raise DeadlineExpired(f"{describe(item.request)}: deadline passed before sending")
            try:
                return await self._transact(item.request)
            except (RequestTimeout, CorruptReply, StaleReply) as exc:
                self._check_link()
                if attempt == retries or not self._link_up:
                    raise
                self._errors[exc.kind] = self._errors.get(exc.kind, 0) + 1
        raise AssertionError("unreachable")

    async def _transact(self, request: Request) -> tuple[int, ...] | None:
        client = self._client
        assert client is not None
        await self._line_quiet()
        sent, reply = request.wire_bytes
        timeout = self.timeout_s + (sent + reply) * self.protocol.char_s
        started = self.clock()
        self._rx_during_request, self._outstanding = False, True
        try:
            async with asyncio.timeout(timeout):
                pdu = await self._call(client, request)
        except TimeoutError:
            self._guard_late_reply()
            what = "no valid reply (corrupt frame)" if self._rx_during_request else "no reply"
            error = CorruptReply if self._rx_during_request else RequestTimeout
            raise error(f"{describe(request)}: {what} within {timeout:.2f} s") from None
        except ModbusException as exc:
            self._check_link()
            if not self._link_up:
                raise LinkDown(f"{self.port or 'inverter port'}: {exc}") from None
            self._guard_late_reply()
            raise CorruptReply(f"{describe(request)}: {exc}") from None
        finally:
            self._outstanding = False
            self._quiet_until = asyncio.get_running_loop().time() + self.protocol.gap_s
            self._counts["transactions"] += 1
            self.transaction_time.add(self.clock() - started)
        mismatch = self._mismatch(request, pdu)
        if mismatch:
            self._counts["stale_replies_discarded"] += 1
            self._guard_late_reply()
            raise StaleReply(f"{describe(request)}: discarded a reply that does not match: {mismatch}")
        if pdu.isError():
            raise ExceptionReply(request, pdu.exception_code)  # type: ignore[attr-defined]
        return tuple(pdu.registers) if isinstance(request, ReadRequest) else None

    async def _call(self, client: ModbusBaseClient, request: Request) -> ModbusPDU:
        unit = self.protocol.unit_id
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

    def _guard_late_reply(self) -> None:
        """After a timeout or a foreign reply: keep the line free until a late reply is over.

        A reply that starts the moment we give up lasts at most a maximal RTU frame; the gap is
        the margin. :meth:`_line_quiet` extends this while bytes keep arriving.
        """
        self._guarding = True
        frame_s = MAX_RTU_ADU * self.protocol.char_s
        self._guard_until = asyncio.get_running_loop().time() + frame_s + self.protocol.gap_s

    async def _line_quiet(self) -> None:
        """Wait until the next frame may go out: a gap after the last transaction and, after a
        timeout, until a late reply had time to finish and the line has been silent for a gap
        (bounded, so a babbling line cannot stall the queue forever)."""
        loop = asyncio.get_running_loop()
        if self._guarding:
            self._guarding = False
            self._quiet_until = max(self._quiet_until, self._guard_until)
            limit = self._guard_until + 2 * MAX_RTU_ADU * self.protocol.char_s
            quiet = max(self.protocol.gap_s, 3.5 * self.protocol.char_s)
            await asyncio.sleep(max(0.0, self._quiet_until - loop.time()))
            while (silent := loop.time() - self._rx_at) < quiet and loop.time() < limit:
                await asyncio.sleep(quiet - silent)
        await asyncio.sleep(max(0.0, self._quiet_until - loop.time()))

    # --- inverter health -------------------------------------------------------------------

    def _alive(self) -> None:
        self._last_success = self._wall()
        if self._failures or self._defective:
            log.info("inverter_recovered", port=self.port, after_failures=self._failures)
        self._failures, self._defective = 0, False
        self._probe_delay = self._probe[0]

    def _failed(self, exc: ModbusError, probing: bool) -> None:
        self._failures += 1
        self._last_error = str(exc)
        if self._failures == 1:
            log.warning("inverter_request_failed", port=self.port, error=str(exc))
        if probing:
            self._probe_delay = min(self._probe_delay * 2, self._probe[1])
        elif self._failures >= self.defective_after:
            self._defective = True
            log.error("inverter_defective", port=self.port, failures=self._failures,
                      probe_in_s=self._probe_delay, error=str(exc))
        if self._defective:
            self._next_probe_at = self.clock() + self._probe_delay
