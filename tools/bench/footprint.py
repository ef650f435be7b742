"""Benchmark: the memory each device service holds, as Balena runs them (separate processes).

    python -m tools.bench.footprint [--settle-s 60] [--venv DIR]

Starts a private mosquitto, the simulated inverter (``nattery simulate`` on a TCP port, RTU
frames), then ``nattery bridge`` and ``nattery app`` against them with a fresh data directory
and the shipped price sample. After ``--settle-s`` seconds it checks that both work (telemetry
on MQTT from the bridge, the web page answering from the app) and reports each process's
resident memory then (``VmRSS``) and at its peak (``VmHWM``), and which heavy modules each one
imported (from ``python -X importtime``, which records every import the process makes, also
those made late). Meanwhile it samples the app's children every 0.2 s: the prices worker the app
starts for the price source and the forecast (``worker_peak_mb``: the highest ``VmHWM`` seen, so
at most a sampling interval's growth short of the true peak; ``worker_runs``: how many ran).

Targets (a Raspberry Pi 3 has 1 GB for the broker, both services and the OS): bridge <= 50 MB,
app <= 160 MB steady RSS; the bridge loads none of the heavy modules. The last line is one
JSON object.

``--venv DIR`` runs the services from another virtualenv (say one with only the wheel installed,
as in the image: ``python -m venv DIR && DIR/bin/pip install dist/nattery-*.whl``), without the
checkout on the import path; by default they run from this interpreter's environment, which
also holds the test and training tools (structlog then loads ``rich``, a few MB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho

from device.ports import free_port, wait_for_port
from tests.conftest import Broker

BRIDGE_TARGET_MB = 50.0
APP_TARGET_MB = 160.0
DEVICE = "footprint"
#: Top-level modules (and device packages) that the bridge has no use for.
HEAVY = ("highspy", "ai_edge_litert", "tflite_runtime", "aiohttp", "jinja2", "entsoe", "requests", "pandas",
         "numpy", "amqtt", "device.plan", "device.forecast", "device.prices",
         "device.web", "device.app")
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")


@dataclass
class Service:
    """A ``nattery`` command running under ``python -X importtime`` (its imports go to ``log``)."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB, from ``/proc/<pid>/status``."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def heavy_modules(self) -> list[str]:
        imported = {m.group(1) for line in self.log.read_text(errors="replace").splitlines()
                    if (m := IMPORT_LINE.match(line))}
        return sorted(h for h in HEAVY if any(m == h or m.startswith(h + ".") for m in imported))

    def children(self) -> list[int]:
        """Process ids of the running children (of any of its threads)."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"nattery {self.name} exited with {self.proc.returncode}:\n"
                             + self.log.read_text(errors="replace")[-3000:])


@contextlib.contextmanager
def service(name: str, args: list[str], env: dict[str, str], directory: Path, python: Path) -> Iterator[Service]:
    """Start ``nattery <args>`` as the console script does; SIGTERM and wait on the way out."""
    log = directory / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(python), "-X", "importtime", str(python.with_name("nattery")), *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield Service(name, proc, log)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def count_telemetry(port: int) -> tuple[paho.Client, list[int]]:
    """A subscriber counting the bridge's telemetry messages."""
    count = [0]
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = lambda *_: count.__setitem__(0, count[0] + 1)
    client.connect("127.0.0.1", port)
    client.subscribe(f"nattery/{DEVICE}/telemetry")
    client.loop_start()
    return client, count


def peak_mb(pid: int) -> float | None:
    """VmHWM of ``pid`` in MB, ``None`` once it has gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except OSError:
        return None
    return int(fields["VmHWM"].split()[0]) / 1024 if "VmHWM" in fields else None


def watch_children(service: Service, until: float) -> tuple[float, int]:
    """Sample ``service``'s children every 0.2 s until ``until`` (monotonic): the highest VmHWM
    seen (MB) and how many distinct children there were."""
    peaks: dict[int, float] = {}
    while time.monotonic() < until:
        for pid in service.children():
            if (mb := peak_mb(pid)) is not None:
                peaks[pid] = max(peaks.get(pid, 0.0), mb)
        time.sleep(0.2)
    return max(peaks.values(), default=0.0), len(peaks)


def page_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        status: int = response.status
        return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle-s", type=float, default=60.0, help="seconds before memory is read")
    parser.add_argument("--venv", type=Path, help="run the services from this virtualenv")
    args = parser.parse_args()
    python = Path(sys.executable) if args.venv is None else args.venv.resolve() / "bin" / "python"
    base_env = dict(os.environ) if args.venv is None else {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        directory = Path(tmp)
        broker = Broker(free_port(), directory / "mosquitto.conf")
        broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker.start()
        stack.callback(broker.stop)
        sim_port, web_port = free_port(), free_port()
        env = {
            **base_env,
            "NATTERY_DEVICE_ID": DEVICE, "NATTERY_DEVICE_DATA_DIR": str(directory),
            "NATTERY_INVERTER_PORT": f"rtu+tcp://127.0.0.1:{sim_port}",
            "NATTERY_MQTT_HOST": "127.0.0.1", "NATTERY_MQTT_PORT": str(broker.port),
            "NATTERY_PRICES_SOURCE": "csv", "NATTERY_WEB_HOST": "127.0.0.1", "NATTERY_WEB_PORT": str(web_port),
            "NATTERY_LOG_FORMAT": "json",
        }
        sim = stack.enter_context(service("simulate", ["simulate", "--listen", f"tcp://127.0.0.1:{sim_port}",
                                                       "--framer", "rtu"], env, directory, python))
        wait_for_port(sim_port, timeout=60)
        client, telemetry = count_telemetry(broker.port)
        stack.callback(client.loop_stop)
        bridge = stack.enter_context(service("bridge", ["bridge"], env, directory, python))
        app = stack.enter_context(service("app", ["app"], env, directory, python))
        started = time.monotonic()
        wait_for_port(web_port, timeout=120)
        worker_peak, worker_runs = watch_children(app, started + args.settle_s)
        for proc in (sim, bridge, app):
            proc.alive()
        if telemetry[0] == 0:
            raise SystemExit("the bridge published no telemetry: " + bridge.log.read_text()[-3000:])
        status = page_status(f"http://127.0.0.1:{web_port}/login")
        bridge_rss, bridge_peak = bridge.memory_mb()
        app_rss, app_peak = app.memory_mb()
        bridge_modules, app_modules = bridge.heavy_modules(), app.heavy_modules()

    ok = bridge_rss <= BRIDGE_TARGET_MB and app_rss <= APP_TARGET_MB and not bridge_modules
    print(f"after {args.settle_s:.0f} s ({telemetry[0]} telemetry messages, web page {status}):")
    print(f"  bridge  RSS {bridge_rss:6.1f} MB (peak {bridge_peak:6.1f}; target <= {BRIDGE_TARGET_MB:.0f})"
          f"  heavy modules: {', '.join(bridge_modules) or 'none'}")
    print(f"  app     RSS {app_rss:6.1f} MB (peak {app_peak:6.1f}; target <= {APP_TARGET_MB:.0f})"
          f"  heavy modules: {', '.join(app_modules) or 'none'}")
    print(f"  prices worker (the app's short-lived child): {worker_runs} run(s), peak {worker_peak:.1f} MB (sampled)")
    print("targets met" if ok else "TARGETS MISSED")
    print(json.dumps({
        "settle_s": args.settle_s, "bridge_rss_mb": round(bridge_rss, 1), "bridge_peak_mb": round(bridge_peak, 1),
        "app_rss_mb": round(app_rss, 1), "app_peak_mb": round(app_peak, 1), "bridge_modules": bridge_modules,
        "worker_peak_mb": round(worker_peak, 1), "worker_runs": worker_runs,
        "app_modules": app_modules, "venv": None if args.venv is None else str(args.venv), "telemetry_messages": telemetry[0], "targets_met": ok,
    }))


if __name__ == "__main__":
    main()
