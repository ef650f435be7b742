"""Each service process loads only what it needs: the bridge none of the app's heavy parts."""

from __future__ import annotations

import json
import subprocess
import sys

#: What the bridge must never load: the planner's solver, the forecast's runtime, the web stack,
#: the price sources and the data-frame libraries, and the device packages that pull them in.
FORBIDDEN = (
    "highspy", "ai_edge_litert", "tflite_runtime", "aiohttp", "jinja2", "entsoe", "requests", "pandas",
    "numpy", "amqtt", "device.plan", "device.forecast", "device.prices",
    "device.web", "device.app",
)

# What `nattery bridge` imports: the command line, then the bridge service's entry module; then
# the app's entry module in the same process, which shows the check sees these modules at all.
PROBE = """
import json, sys
forbidden = json.loads(sys.argv[1])
def loaded():
    return sorted(m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in forbidden))
import device.cli, device.services.bridge
bridge = loaded()
import device.app
print(json.dumps({"bridge": bridge, "app": loaded()}))
"""


def test_the_bridge_entry_module_loads_none_of_the_app_parts() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(FORBIDDEN)],
                         capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert loaded["bridge"] == []
    app_roots = {name.split(".")[0] if not name.startswith("device.") else ".".join(name.split(".")[:2])
                 for name in loaded["app"]}
    assert {"highspy", "ai_edge_litert", "aiohttp", "jinja2", "pandas", "numpy", "device.plan",
            "device.web", "device.app"} <= app_roots
