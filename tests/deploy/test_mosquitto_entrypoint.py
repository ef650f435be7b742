"""The device broker's start script (config/mosquitto/entrypoint.sh) with the real mosquitto:
nobody on the home network commands the battery without a password."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from device.ports import free_port, wait_for_port

SCRIPT = Path(__file__).resolve().parents[2] / "config" / "mosquitto" / "entrypoint.sh"


def start(tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    port = free_port()
    proc = subprocess.Popen(
        ["/bin/sh", str(SCRIPT)],
        env={**os.environ, "PATH": os.environ["PATH"] + ":/usr/sbin", "MOSQUITTO_CONFIG_DIR": str(tmp_path / "conf"),
             "MOSQUITTO_DATA_DIR": str(tmp_path / "data"), "MOSQUITTO_PORT": str(port), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.port = port  # type: ignore[attr-defined]
    return proc


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A directory mosquitto's own user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="nattery-mosquitto-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def broker(broker_dir: Path) -> Iterator[int]:
    proc = start(broker_dir, NATTERY_MQTT_USERNAME="nattery", NATTERY_MQTT_PASSWORD="s3rvice-pass",
                 HA_MQTT_USERNAME="homeassistant", HA_MQTT_PASSWORD="ha-pass-123")
    try:
        wait_for_port(proc.port)  # type: ignore[attr-defined]
        yield proc.port  # type: ignore[attr-defined]
    finally:
        proc.terminate()
        proc.wait(10)


def connect(port: int, user: str | None = None, password: str | None = None) -> tuple[paho.Client, list[tuple[str, bytes]]]:
    received: list[tuple[str, bytes]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    if user is not None:
        client.username_pw_set(user, password)
    client.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, received


def wait_connected(client: paho.Client, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.is_connected():
            return True
        time.sleep(0.05)
    return False


def test_anonymous_and_wrong_passwords_are_refused(broker: int) -> None:
    for user, password in ((None, None), ("nattery", "guess")):
        client, _ = connect(broker, user, password)
        try:
            assert not wait_connected(client, 1.5), f"{user or 'anonymous'} got in"
        finally:
            client.loop_stop()


def test_home_assistant_reads_but_cannot_command(broker: int) -> None:
    service, seen_by_service = connect(broker, "nattery", "s3rvice-pass")
    ha, seen_by_ha = connect(broker, "homeassistant", "ha-pass-123")
    try:
        assert wait_connected(service) and wait_connected(ha)
        service.subscribe("nattery/#", qos=1)
        ha.subscribe("nattery/#", qos=1)
        time.sleep(0.3)
        service.publish("nattery/dev/telemetry", b'{"soc_pct": 50}', qos=1).wait_for_publish(5)
        ha.publish("nattery/dev/cmd/charge", b'{"id": "x", "power_w": 5000}', qos=1).wait_for_publish(5)
        service.publish("nattery/dev/cmd/hold", b'{"id": "y"}', qos=1).wait_for_publish(5)
        time.sleep(0.5)
        assert ("nattery/dev/telemetry", b'{"soc_pct": 50}') in seen_by_ha
        topics = [t for t, _ in seen_by_service]
        assert "nattery/dev/cmd/hold" in topics  # the services command …
        assert "nattery/dev/cmd/charge" not in topics  # … Home Assistant's command was dropped
    finally:
        for client in (service, ha):
            client.loop_stop()
            client.disconnect()


def test_no_password_no_broker(broker_dir: Path) -> None:
    proc = start(broker_dir, NATTERY_MQTT_PASSWORD="")
    assert proc.wait(10) == 1
    assert b"NATTERY_MQTT_PASSWORD is empty" in proc.stderr.read()  # type: ignore[union-attr]
