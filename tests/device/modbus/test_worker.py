"""The sequential Modbus worker against the real simulator: over a socat pty pair (RTU), RTU over
TCP and Modbus TCP. The simulator counts every request that arrives before the previous reply
plus the gap has passed, so "violations == 0" is checked on the inverter's side of the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from device.modbus.blocks import plan_blocks
from device.modbus.client import client_factory
from common import logs as logs_module
from device.clock import SystemClock
from device.modbus import defective as defective_module
from device.modbus.mapmodel import RegisterMap
from device.modbus.registermap import load_map
from device.modbus.worker import (
    CorruptReply, DeadlineExpired, ExceptionReply, InverterDefective, LinkDown, ModbusWorker,
    Priority, QueueFull, ReadRequest, RequestTimeout, WorkerStopped, WriteRequest,
)
from device.simulator import Simulator
from tests.conftest import PtyPair, free_port, open_pty_pair

# Deye map at 38400 baud with a 20 ms gap: the same discipline as 9600/50 ms, four times faster.
BAUD = 38400

# Two writable two-register blocks of equal length: a reply to one passes for the other.
BLOCK_A = ReadRequest("holding", 210, 2)  # max_charge_current, max_discharge_current
BLOCK_B = ReadRequest("holding", 250, 2)  # prog1_time, prog2_time


class Clock(SystemClock):
    """The real clock, moved forward by ``offset`` (probe intervals without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def regmap(request: pytest.FixtureRequest) -> RegisterMap:
    """Deye at BAUD with a 20 ms gap; a test may ask for another baud (indirect parameter)."""
    deye = load_map("deye_hybrid_1p")
    baud = getattr(request, "param", BAUD)
    return replace(deye, protocol=replace(deye.protocol, baudrate=baud, gap_s=0.02, timeout_s=0.25))


@pytest.fixture
async def sim(regmap: RegisterMap) -> AsyncIterator[Simulator]:
    simulator = Simulator(regmap)
    yield simulator
    await simulator.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeWorker = Callable[..., Awaitable[ModbusWorker]]


@pytest.fixture
async def make_worker(regmap: RegisterMap, sim: Simulator, pty_pair: PtyPair, clock: Clock) -> AsyncIterator[MakeWorker]:
    """Start the simulator on the pty (or TCP, ``url="rtu+tcp"|"tcp"``) and a worker for it."""
    workers: list[ModbusWorker] = []
    served: set[str] = set()

    async def make(url: str = "serial", **options: Any) -> ModbusWorker:
        protocol = options.pop("protocol", regmap.protocol)
        if url == "serial":
            if "serial" not in served:
                await sim.serve_serial(pty_pair.b)
                served.add("serial")
            url = f"serial://{pty_pair.a}"
        else:
            port = await sim.serve_tcp("127.0.0.1", 0, framer="rtu" if url == "rtu+tcp" else "socket")
            url = f"{url}://127.0.0.1:{port}"
        options = {"clock": clock, "reconnect_s": 0.1, "port": url, **options}
        worker = ModbusWorker(client_factory(url, protocol), protocol, **options)
        await worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        await worker.stop()


async def write_ab(worker: ModbusWorker) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Give blocks A and B distinct, known contents."""
    a, b = (11, 22), (1033, 1144)
    await worker.submit(WriteRequest(BLOCK_A.address, a), Priority.CONTROL)
    await worker.submit(WriteRequest(BLOCK_B.address, b), Priority.CONTROL)
    return a, b


# --- sequencing and priorities -----------------------------------------------------------------

WRITABLE = [(210, 185), (211, 185), (230, 185), (245, 12000), (250, 2359), (251, 2359), (256, 8000), (268, 100)]


@pytest.mark.parametrize("url", ["serial", "rtu+tcp", "tcp"])
async def test_eight_concurrent_callers_while_polling_never_overlap(
    url: str, make_worker: MakeWorker, sim: Simulator, regmap: RegisterMap
) -> None:
    worker = await make_worker(url)
    blocks = plan_blocks(regmap)
    done = asyncio.Event()
    polls = 0

    async def poll() -> None:
        nonlocal polls
        while not done.is_set():
            await asyncio.gather(*(worker.submit(ReadRequest("holding", b.start, b.count), Priority.TELEMETRY)
                                   for b in blocks))
            polls += 1

    async def caller(address: int, high: int) -> None:
        rng = random.Random(address)
        for _ in range(4):
            value = rng.randint(0, high)
            await worker.submit(WriteRequest(address, (value,)), Priority.CONTROL)
            assert await worker.submit(ReadRequest("holding", address, 1), Priority.ONDEMAND) == (value,)

    poller = asyncio.create_task(poll())
    await asyncio.gather(*(caller(a, high) for a, high in WRITABLE))
    done.set()
    await poller
    assert polls >= 1
    assert sim.stats.violations == 0 and sim.stats.disturbed == 0
    stats = worker.stats()
    assert stats["errors"] == {} and stats["retries"] == 0
    assert stats["transactions"] == sim.stats.transactions == 8 * 4 * 2 + polls * len(blocks)
    assert stats["state"] == "ok"


async def test_control_jumps_ahead_of_queued_telemetry_fifo_within_priority(make_worker: MakeWorker) -> None:
    worker = await make_worker()
    await worker.submit(BLOCK_A)  # connected
    order: list[str] = []

    def track(label: str, coro: Awaitable[object]) -> asyncio.Task[object]:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda _: order.append(label))
        return task

    tasks = [track(f"t{i}", worker.submit(ReadRequest("holding", 150, 60), Priority.TELEMETRY)) for i in range(6)]
    await asyncio.sleep(0)  # all six queued, the first one in flight
    depth = worker.stats()["queue_depth"]
    assert depth["telemetry"] >= 5
    tasks.append(track("ondemand", worker.submit(BLOCK_B, Priority.ONDEMAND)))
    tasks.append(track("control", worker.submit(WriteRequest(210, (5,)), Priority.CONTROL)))
    await asyncio.gather(*tasks)
    telemetry = [label for label in order if label.startswith("t")]
    assert telemetry == sorted(telemetry)  # FIFO within a priority
    first_control = order.index("control")
    assert first_control <= 1  # waited for at most the one transaction in flight
    assert order.index("ondemand") == first_control + 1


async def test_gap_is_what_keeps_the_firmware_happy(make_worker: MakeWorker, sim: Simulator, regmap: RegisterMap) -> None:
    """Negative control for the sequencing test: without the gap the simulator sees overlaps."""
    rude = await make_worker(protocol=replace(regmap.protocol, gap_s=0.0), retries=0, defective_after=100)
    for _ in range(4):
        with contextlib.suppress(RequestTimeout):
            await rude.submit(BLOCK_A)  # firmware confused by the overlap drops the request
    assert sim.stats.violations > 0


@pytest.mark.parametrize("pause_s", [0.0, load_map("huawei_sun2000_luna2000").protocol.connect_pause_s])
async def test_the_maps_pause_after_connect_comes_before_the_first_request(
        make_worker: MakeWorker, regmap: RegisterMap, clock: Clock, pause_s: float) -> None:
    """Huawei's map: 1 s of quiet after each connect before the first request (huawei-solar-lib's
    wait after connect); other maps none."""
    slept: list[float] = []
    sleep = clock.sleep

    async def recording(seconds: float) -> None:
        slept.append(seconds)
        await sleep(seconds)

    clock.sleep = recording  # type: ignore[method-assign]
    worker = await make_worker("tcp", protocol=replace(regmap.protocol, connect_pause_s=pause_s))
    await worker.submit(BLOCK_A)
    waited = max(slept, default=0.0)
    assert waited == pytest.approx(pause_s, abs=0.05) if pause_s else waited < 0.1


async def test_expired_deadline_is_dropped_before_sending(make_worker: MakeWorker, sim: Simulator) -> None:
    worker = await make_worker()
    await worker.submit(BLOCK_A)
    before = sim.stats.transactions
    with pytest.raises(DeadlineExpired, match="deadline passed before sending"):
        await worker.submit(BLOCK_B, Priority.TELEMETRY, deadline=worker.deadline_in(-0.001))
    assert sim.stats.transactions == before
    assert worker.stats()["deadline_misses"] == 1


# --- faults --------------------------------------------------------------------------------------

async def test_no_reply_is_retried_after_the_timeout(make_worker: MakeWorker, sim: Simulator) -> None:
    worker = await make_worker(retries=2)
    a, _ = await write_ab(worker)
    sim.faults.arm("no_reply", 1)
    assert await worker.submit(BLOCK_A) == a
    stats = worker.stats()
    assert (stats["retries"], stats["errors"]) == (1, {"timeout": 1})
    sim.faults.arm("no_reply", 3)
    with pytest.raises(RequestTimeout, match="read holding 210\\+2: no reply within"):
        await worker.submit(BLOCK_A)
    assert worker.stats()["errors"] == {"timeout": 4}
    assert sim.stats.violations == 0


async def test_corrupt_crc_is_retried_and_counted_as_corrupt(make_worker: MakeWorker, sim: Simulator) -> None:
    worker = await make_worker(retries=1)
    a, _ = await write_ab(worker)
    sim.faults.arm("corrupt_crc", 1)
    assert await worker.submit(BLOCK_A) == a
    assert worker.stats()["errors"] == {"corrupt": 1}
    sim.faults.arm("corrupt_crc", 2)
    with pytest.raises(CorruptReply, match="corrupt frame"):
        await worker.submit(BLOCK_A)


@pytest.mark.parametrize("regmap", [9600], indirect=True)
async def test_late_reply_is_never_taken_for_the_next_answer(make_worker: MakeWorker, sim: Simulator) -> None:
    worker = await make_worker(retries=0, defective_after=100)
    a, b = await write_ab(worker)
    # At 9600 baud we give up 0.27 s after sending and then keep the line free for a maximal
    # frame (0.27 s) plus the gap: the reply 0.36 s after the request lands well inside.
    sim.faults.late_delay_s = 0.35
    sim.faults.arm("late", 1)
    with pytest.raises(RequestTimeout):
        await worker.submit(BLOCK_A)
    # The late reply to A (same function code, same length) arrives; B must get B's values.
    assert await worker.submit(BLOCK_B) == b
    assert await worker.submit(BLOCK_A) == a
    assert worker.stats()["stale_replies_discarded"] == 1  # the late reply did arrive, ignored
    assert sim.stats.violations == 0


async def test_very_late_reply_of_another_length_is_discarded(make_worker: MakeWorker, sim: Simulator) -> None:
    """A reply later than any wait lands in the next transaction: the count check rejects it."""
    worker = await make_worker(retries=2, defective_after=100)
    await write_ab(worker)
    sim.faults.late_delay_s = 0.45  # after our timeout and the guard: during the next request
    sim.faults.arm("late", 1)
    worker.retries = 0  # a retry of A would simply receive A's late reply
    with pytest.raises(RequestTimeout):
        await worker.submit(BLOCK_A)
    worker.retries = 2
    # B goes out while A's reply is still due (the firmware drops B as an overlap); A's two
    # registers arrive as "the answer" to B's six: discarded, the line guarded, B retried.
    assert (await worker.submit(ReadRequest("holding", 250, 6)))[:2] == (1033, 1144)
    stats = worker.stats()
    assert (stats["errors"], stats["stale_replies_discarded"], stats["retries"]) == (
        {"timeout": 1, "stale": 1}, 1, 1)
    assert sim.stats.violations == 1


async def test_exception_reply_is_final(make_worker: MakeWorker, sim: Simulator) -> None:
    worker = await make_worker(retries=3)
    await worker.submit(BLOCK_A)
    before = sim.stats.transactions
    with pytest.raises(ExceptionReply, match="exception 2 \\(illegal data address\\)") as info:
        await worker.submit(ReadRequest("holding", 5000, 4))
    assert info.value.code == 2
    sim.faults.exception_code = 6
    sim.faults.arm("exception", 1)
    with pytest.raises(ExceptionReply, match="server device busy"):
        await worker.submit(BLOCK_A)
    assert sim.stats.transactions == before + 2  # no retries
    stats = worker.stats()
    assert (stats["retries"], stats["errors"], stats["state"]) == (0, {"exception": 2}, "ok")


async def test_defective_inverter_is_backed_off_then_probed(
    make_worker: MakeWorker, sim: Simulator, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = await make_worker(retries=0, defective_after=2, probe_s=5.0)
    await worker.submit(BLOCK_A)
    sim.faults.defective = True
    logs_module.configure("info", "console")  # "recovered" is an info line
    with capture_logs() as logs:
        # the module's logger was cached under the normal configuration; use one that captures
        monkeypatch.setattr(defective_module, "log", structlog.get_logger(defective_module.__name__))
        for _ in range(2):
            with pytest.raises(RequestTimeout):
                await worker.submit(BLOCK_A)
        assert worker.state == "defective"
        sent = sim.stats.transactions
        with pytest.raises(InverterDefective, match="backed off, next probe in"):
            await worker.submit(BLOCK_B)
        assert sim.stats.transactions == sent  # failed fast: nothing sent
        clock.offset += 6  # probe time: one request goes out, fails, the wait doubles
        with pytest.raises(RequestTimeout):
            await worker.submit(BLOCK_A)
        assert sim.stats.transactions == sent + 1
        assert worker.stats()["next_probe_in_s"] > 9
        sim.faults.defective = False
        with pytest.raises(InverterDefective):
            await worker.submit(BLOCK_A)
        clock.offset += 11
        await worker.submit(BLOCK_A)  # the probe succeeds
        assert worker.state == "ok"
        await worker.submit(BLOCK_B)
    events = [entry["event"] for entry in logs]
    assert events == ["inverter_request_failed", "inverter_defective", "inverter_recovered"]
    stats = worker.stats()
    assert stats["errors"] == {"defective": 2, "timeout": 3}
    assert stats["last_success"].endswith("Z")


async def wait_for_state(worker: ModbusWorker, state: str) -> None:
    for _ in range(200):
        if worker.state == state:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"worker stayed {worker.state!r}, expected {state!r}")


async def test_unplugged_adapter_is_reopened(make_worker: MakeWorker, pty_pair: PtyPair, tmp_path: Path) -> None:
    worker = await make_worker(retries=3)  # the simulator may reopen its end a moment after us
    await worker.submit(BLOCK_A)
    pty_pair.close()  # socat gone: both ptys vanish, as when the USB adapter is pulled
    await wait_for_state(worker, "disconnected")  # noticed while idle
    with pytest.raises(LinkDown, match="link down; next reconnect in"):
        await worker.submit(BLOCK_A)
    fresh = open_pty_pair(tmp_path)  # plugged in again: same link names, new ptys
    pty_pair.proc = fresh.proc  # so the fixture stops the new socat
    await wait_for_state(worker, "ok")  # reopened without a request asking for it
    await worker.submit(BLOCK_A)
    stats = worker.stats()
    assert (stats["state"], stats["reconnects"], stats["errors"]["disconnected"]) == ("ok", 1, 1)


async def test_inverter_absent_at_start_is_not_fatal(sim: Simulator, regmap: RegisterMap) -> None:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    worker = ModbusWorker(client_factory(url, regmap.protocol), regmap.protocol, port=url, reconnect_s=0.1)
    async with worker:
        with pytest.raises(LinkDown, match=f"{url}: link down; next reconnect in .*\\(connect: cannot open"):
            await worker.submit(BLOCK_A)
        await sim.serve_tcp("127.0.0.1", port, framer="socket")
        await wait_for_state(worker, "ok")
        assert len(await worker.submit(BLOCK_A)) == 2
        assert worker.stats()["reconnects"] == 0  # the first connection is no reconnect


async def test_full_queue_refuses_a_request_without_touching_the_others(make_worker: MakeWorker) -> None:
    worker = await make_worker(max_queued=3)
    await worker.submit(BLOCK_A)  # connected
    telemetry = [asyncio.ensure_future(worker.submit(BLOCK_A, Priority.TELEMETRY)) for _ in range(3)]
    await asyncio.sleep(0)  # all three queued; the worker still waits out the gap after the first read
    assert worker.stats()["queue_depth"]["telemetry"] == 3
    with pytest.raises(QueueFull, match=r"read holding 210\+2: refused, 3 telemetry requests already "
                                        r"waiting \(limit 3 per priority\)"):
        await worker.submit(BLOCK_A, Priority.TELEMETRY)
    # the limit is per priority: a control write still gets in, ahead of the waiting reads
    await worker.submit(WriteRequest(210, (9,)), Priority.CONTROL)
    assert all(len(r) == 2 for r in await asyncio.gather(*telemetry))
    stats = worker.stats()
    assert stats["errors"] == {"queue_full": 1}
    assert stats["queue_depth"]["telemetry"] == 0


async def test_stop_fails_queued_requests_and_later_submits(make_worker: MakeWorker) -> None:
    worker = await make_worker()
    pending = [asyncio.ensure_future(worker.submit(ReadRequest("holding", 150, 100), Priority.TELEMETRY))
               for _ in range(3)]
    await asyncio.sleep(0)
    await worker.stop()
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert any(isinstance(r, WorkerStopped) for r in results), results
    with pytest.raises(WorkerStopped):
        await worker.submit(BLOCK_A)


async def test_stats_for_health(make_worker: MakeWorker) -> None:
    worker = await make_worker()
    await worker.submit(BLOCK_A)
    await worker.submit(WriteRequest(210, (7,)), Priority.CONTROL)
    stats = worker.stats()
    assert set(stats) >= {
        "state", "queue_depth", "transactions", "errors", "retries", "reconnects",
        "stale_replies_discarded", "deadline_misses", "last_success", "latency",
    }
    assert stats["queue_depth"] == {"control": 0, "ondemand": 0, "telemetry": 0}
    assert stats["transactions"] == 2
    for name in ("queue_wait_s", "transaction_s"):
        latency = stats["latency"][name]
        assert latency["count"] == 2 and sum(latency["buckets"].values()) == 2
        assert 0 <= latency["p50"] <= latency["p99"]


def test_requests_refuse_what_modbus_cannot_carry() -> None:
    with pytest.raises(ValueError, match=r"count 1..125"):
        ReadRequest("holding", 0, 126)
    with pytest.raises(ValueError, match="allowed: holding, input"):
        ReadRequest("coils", 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16-bit words"):
        WriteRequest(0, (70000,))
    with pytest.raises(ValueError, match=r"1..123 registers"):
        WriteRequest(0, ())
