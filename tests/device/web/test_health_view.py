"""The installer's health summary: state first, errors by kind, latencies in ms, ages, no Python literals."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from device.web.health_view import summary
from device.web.i18n import Locale

NOW = 1_800_000_000.0
BRIDGE = {
    "ts": "2027-01-15T08:00:00.000Z", "uptime_s": 3600, "inverter_online": True,
    "last_poll": None, "polls": 1200, "poll_failures": 0,
    "modbus": {
        "state": "ok", "errors": {"timeout": 2, "crc": 5, "exception": 0},
        "latency": {"transaction_s": {"count": 19, "sum": 1.86, "mean": 0.098, "p50": 0.0447, "p99": 0.3183,
                                      "max": 0.3183, "buckets": {"le_0.005": 0, "le_inf": 0}}},
    },
    "watchdog": {"mode": "self_consumption", "expires_in_s": 42.5, "params": {}},
    "tasks": {"poll": {"state": "running", "restarts": 0, "last_error": None}},
}


def test_health_reads_as_a_summary() -> None:
    rows = summary({"bridge": BRIDGE, "prices": {"last_fetch_ts": NOW - 90}}, NOW, Locale("en", ZoneInfo("UTC")))
    bridge = dict(rows["bridge"])
    labels = [label for label, _ in rows["bridge"]]
    assert labels[:4] == ["inverter_online", "modbus.state", "watchdog.mode", "tasks.poll.state"]  # state first
    assert bridge["inverter_online"] == "yes" and bridge["modbus.state"] == "ok"
    assert bridge["modbus.errors"] == "crc 5, timeout 2"  # by kind, most first, none of the zeros
    assert bridge["modbus.latency.transaction"] == "p50 45 ms · p99 318 ms · max 318 ms (19×)"
    assert not any("buckets" in label for label in labels)
    assert bridge["ts"] == "0 s ago"  # 2027-01-15T08:00:00Z is NOW
    assert bridge["uptime"] == "60 min" and bridge["watchdog.expires_in"] == "42 s"
    assert bridge["last_poll"] == "–" and bridge["tasks.poll.last_error"] == "–"
    assert dict(rows["prices"])["last_fetch_ts"] == "90 s ago"
    text = " ".join(value for values in rows.values() for _, value in values)
    assert "True" not in text and "None" not in text and "1800000" not in text


def test_ages_of_iso_timestamps_and_german_words() -> None:
    rows = summary({"bridge": {"ts": "2027-01-15T07:58:00Z", "online": False, "errors": {}}},
                   1_800_000_000.0, Locale("de", ZoneInfo("Europe/Berlin")))
    assert rows["bridge"] == [("online", "nein"), ("ts", "vor 2 min"), ("errors", "keine")]
