"""Home Assistant MQTT discovery: one retained config message per main value.

Home Assistant then shows the appliance as a device with sensors fed from our ``telemetry`` topic
and marks them unavailable when the bridge's LWT says ``offline``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from device.config import Config
from device.modbus.mapmodel import RegisterMap
from device.mqtt import Topics

# role → (friendly name, unit, device_class, state_class)
SENSORS: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "soc_pct": ("Battery level", "%", "battery", "measurement"),
    "battery_w": ("Battery power (discharge +)", "W", "power", "measurement"),
    "pv_w": ("Solar power", "W", "power", "measurement"),
    "grid_w": ("Grid power (import +)", "W", "power", "measurement"),
    "load_w": ("House consumption", "W", "power", "measurement"),
    "battery_temp_c": ("Battery temperature", "°C", "temperature", "measurement"),
    "inverter_temp_c": ("Inverter temperature", "°C", "temperature", "measurement"),
    "energy_import_wh": ("Grid import", "Wh", "energy", "total_increasing"),
    "energy_export_wh": ("Grid export", "Wh", "energy", "total_increasing"),
    "energy_charge_wh": ("Battery charged", "Wh", "energy", "total_increasing"),
    "energy_discharge_wh": ("Battery discharged", "Wh", "energy", "total_increasing"),
    "energy_pv_wh": ("Solar energy", "Wh", "energy", "total_increasing"),
    "energy_load_wh": ("House energy", "Wh", "energy", "total_increasing"),
    "state": ("Inverter state", None, None, None),
    "mode": ("Battery mode", None, None, None),
}


def alert_discovery(cfg: Config, topics: Topics) -> tuple[str, dict[str, Any]]:
    """The app's alerts as one binary "problem" sensor (on while any alert is active; the list,
    names and summaries as its attributes)."""
    device_id = cfg.device.id
    return f"{cfg.mqtt.discovery_prefix}/binary_sensor/nattery_{device_id}/alerts/config", {
        "name": "Alerts",
        "unique_id": f"nattery_{device_id}_alerts",
        "object_id": f"nattery_{device_id}_alerts",
        "device_class": "problem",
        "state_topic": topics.alerts,
        "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
        "json_attributes_topic": topics.alerts,
        "device": {"identifiers": [f"nattery_{device_id}"], "name": f"nattery {device_id}", "manufacturer": "nattery"},
    }


def discovery_messages(cfg: Config, regmap: RegisterMap, topics: Topics) -> Iterator[tuple[str, dict[str, Any]]]:
    """(topic, payload) for every role the map provides, plus the commanded mode."""
    device_id = cfg.device.id
    device = {
        "identifiers": [f"nattery_{device_id}"],
        "name": f"nattery {device_id}",
        "manufacturer": "nattery",
        "model": regmap.name,
    }
    for key in [*regmap.roles, "mode"]:
        if key not in SENSORS:
            continue
        name, unit, device_class, state_class = SENSORS[key]
        payload: dict[str, Any] = {
            "name": name,
            "unique_id": f"nattery_{device_id}_{key}",
            "object_id": f"nattery_{device_id}_{key}",
            "state_topic": topics.telemetry,
            "value_template": f"{{{{ value_json.{key} }}}}",
            "availability_topic": topics.status,
            "payload_available": "online",
            "payload_not_available": "offline",
            "expire_after": max(60, int(cfg.inverter.poll_interval_s * 6)),
            "device": device,
        }
        for field_name, value in (
            ("unit_of_measurement", unit),
            ("device_class", device_class),
            ("state_class", state_class),
        ):
            if value is not None:
                payload[field_name] = value
        yield f"{cfg.mqtt.discovery_prefix}/sensor/nattery_{device_id}/{key}/config", payload
