"""One log format per process: our events, stdlib loggers, warnings and native banners."""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import sys
import threading
import warnings

import pytest
from structlog.testing import capture_logs

from common import logs


def test_stdlib_loggers_and_warnings_come_out_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    # The root handler takes every record of the process while this test captures stderr, also
    # what earlier tests left behind: a finaliser's ResourceWarning or asyncio's "Task was
    # destroyed" when the garbage collector runs (it does when it likes; how much is left over,
    # and so when, depends on the machine's load), a line of a thread still running. Collect that
    # garbage first, and judge this test's own events among whatever else comes out as JSON.
    # The library logger is one the appliance leaves at its default level (the Modbus client
    # raises pymodbus's to ERROR, so a pymodbus warning would vanish after any Modbus test).
    gc.collect()
    with warnings.catch_warnings():  # pytest records warnings itself; give them back to logging
        warnings.simplefilter("always")
        logging.captureWarnings(False)
        logs.configure("info", "json", cache=False)
        logging.getLogger("amqtt.broker").warning("client %s disconnected", "nattery-app")
        logging.getLogger("amqtt.broker").info("below the library threshold")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    try:
        raise ValueError("bad frame")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("handler failed", extra={"password": "x"})
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]  # every line is JSON
    ours = [e for e in lines if e.get("logger") in ("amqtt.broker", "aiohttp.server")
            or "deprecated thing" in e.get("event", "")]
    assert [(e["logger"], e["level"]) for e in ours] == [
        ("amqtt.broker", "warning"), ("py.warnings", "warning"), ("aiohttp.server", "error")]
    assert ours[0]["event"] == "client nattery-app disconnected" and ours[0]["timestamp"].endswith("Z")
    assert "ValueError: bad frame" in ours[2]["exception"]


def test_configuring_twice_installs_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json", cache=False)
    logs.configure("info", "json", cache=False)
    logging.getLogger("amqtt").error("once")
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_native_output_becomes_a_debug_event(capfd: pytest.CaptureFixture[str]) -> None:
    logs.configure("debug", "json", cache=False)
    libc = ctypes.CDLL(None)
    with capture_logs() as events, logs.native_output_logged("banner"):
        libc.printf(b"Running Native 1.0: Copyright\n")
    print("after")
    assert capfd.readouterr().out == "after\n"
    assert events == [{"event": "banner", "output": "Running Native 1.0: Copyright", "log_level": "debug"}]


def test_an_uncaught_exception_is_one_json_event(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json", cache=False)
    try:
        raise OSError("disk gone")
    except OSError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["event"] == "uncaught exception" and first["level"] == "critical"
    assert "OSError: disk gone" in first["exception"] and "ZeroDivisionError" in second["exception"]
