"""Shared fixtures: real parts only — a mosquitto broker on a free port, socat pty pairs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common import logs
from device.mqtt import MqttSession
from device.ports import free_port, wait_for_port


@contextlib.asynccontextmanager
async def session_running(session: MqttSession, timeout_s: float = 10.0) -> AsyncIterator[MqttSession]:
    """Run ``session`` (as a process's owner would) until the block ends; connected on entry."""
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), timeout_s)
        yield session
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def wait_for_server(proc: subprocess.Popen, port: int, log: Path, timeout: float = 90.0) -> None:
    """Wait until the server process ``proc`` listens on ``port``; fail at once, with the end of
    its ``log``, if it exits first (a port taken meanwhile, a crash), else after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            wait_for_port(port, timeout=0.5)
            return
        except TimeoutError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                pytest.fail(f"{proc.args!r} did not listen on port {port} "
                            f"(exit {proc.poll()}):\n{tail}")


@dataclass
class Broker:
    """A mosquitto process of the test's own; ``restart()`` stops and starts it on the same port."""

    port: int
    conf: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self, down_s: float = 0.5) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


@contextlib.contextmanager
def running_broker(directory: Path) -> Iterator[Broker]:
    """A mosquitto of its own on a free port (its config file in ``directory``), stopped afterwards."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        pytest.fail("mosquitto is not installed (bash .ci/run installs it)")
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = Broker(port, conf)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    with running_broker(tmp_path) as broker:
        yield broker


@dataclass
class PtyPair:
    """Two connected pseudo-terminals made by socat: the bridge opens ``a``, the simulator ``b``."""

    a: str
    b: str
    proc: subprocess.Popen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def open_pty_pair(directory: Path) -> PtyPair:
    a, b = directory / "ttyA", directory / "ttyB"
    for link in (a, b):
        link.unlink(missing_ok=True)
    proc = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("socat did not create the pty pair")
        time.sleep(0.02)
    return PtyPair(str(a), str(b), proc)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    if shutil.which("socat") is None:
        pytest.fail("socat is not installed (bash .ci/run installs it)")
    pair = open_pty_pair(tmp_path)
    yield pair
    pair.close()


@pytest.fixture(autouse=True)
def _logging() -> None:
    logs.configure("warning", "console", cache=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests first: they are the longest (whole processes, demo time that passes
    in real minutes). Under pytest-xdist they then run beside the short tests on the other
    worker, not last and alone."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/e2e/"))
