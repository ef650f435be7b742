"""Each service process loads only what it needs: the bridge none of the app's heavy parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: What the bridge must never load: the planner's solver, the forecast's runtime, the web stack,
#: the price sources and the data-frame libraries, and the device packages that pull them in.
FORBIDDEN = (
    "highspy", "ai_edge_litert", "tflite_runtime", "aiohttp", "jinja2", "entsoe", "requests", "pandas",
    "numpy", "amqtt", "device.plan", "device.forecast", "device.prices",
    "device.web", "device.app",
)

#: What the long-lived app must not hold: the price sources, the forecast's runtime and pandas
#: live in the short-lived prices worker (device/services/prices_worker.py).
APP_FORBIDDEN = ("pandas", "entsoe", "requests", "ai_edge_litert", "tflite_runtime", "device.forecast.history",
                 "device.forecast.price", "device.prices.entsoe_source", "device.prices.csv_source")

# What `nattery bridge` imports: the command line, then the bridge service's entry module; then
# the app's entry module in the same process; then the prices worker's, which shows the check
# sees the modules it looks for at all.
PROBE = """
import json, sys
forbidden = json.loads(sys.argv[1])
def loaded():
    return sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
import device.cli, device.services.bridge
bridge = loaded()
import device.app
app = loaded()
import device.services.prices_worker
print(json.dumps({"bridge": bridge, "app": app, "worker": loaded()}))
"""


def roots(modules: list[str]) -> set[str]:
    return {name.split(".")[0] if not name.startswith("device.") else ".".join(name.split(".")[:2])
            for name in modules}


def test_each_entry_module_loads_only_its_own_parts() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(FORBIDDEN + APP_FORBIDDEN)],
                         capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert loaded["bridge"] == []
    assert {"highspy", "aiohttp", "jinja2", "numpy", "device.plan", "device.web", "device.app"} <= roots(loaded["app"])
    assert [m for m in loaded["app"] if any(m == f or m.startswith(f + ".") for f in APP_FORBIDDEN)] == []
    assert {"pandas", "entsoe", "ai_edge_litert", "device.prices"} <= roots(loaded["worker"])


# The app's prices job for a whole round (backfill, fetch, forecast, publish) from the CSV sample,
# then what the process has loaded: the work happened in the worker, not here.
PRICES_ROUND = """
import asyncio, json, sys
from pathlib import Path
from device import config
from device.prices.runtime import PricesApp
from device.store import AsyncStore

async def main():
    cfg = config.load(environ={}, overrides={"prices": {"source": "csv"}})
    published = asyncio.Event()
    async def publish(payload):
        published.set()
    async with AsyncStore(Path(sys.argv[1]) / "nattery.db") as store:
        app = PricesApp(cfg, store, publish)
        task = asyncio.create_task(app.run())
        await asyncio.wait_for(published.wait(), 120)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return app.health()

health = asyncio.run(main())
forbidden = json.loads(sys.argv[2])
print(json.dumps({"health": health, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in forbidden)}))
"""


def test_the_app_forecasts_without_loading_pandas_or_the_model_runtime(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PRICES_ROUND, str(tmp_path), json.dumps(["pandas", "entsoe", "ai_edge_litert"])],
                         capture_output=True, text=True, check=True, timeout=180)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["health"]["today"] == "complete" and result["health"]["model"] == "price_de_lu.tflite"
    assert result["health"]["forecast"]  # the worker forecast (and stored it) ...
    assert result["loaded"] == []  # ... and this process never loaded what it needed for that
