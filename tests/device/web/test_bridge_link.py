"""The web page's MQTT link survives any payload on the topics it reads (real mosquitto)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiomqtt

from device import config as configuration
from device.mqtt import MqttSession, Topics
from device.web.bridge_link import BridgeLink
from tests.conftest import Broker, session_running

HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json: killed the link for good
    b'{"id": NaN, "ok": true}',
    b'{"ts": "2024-01-01T00:00:00Z", "soc_pct": Infinity}',
    b"\xff\xfe",
    b"[]",
    b'"text"',
    b"",
]


async def _answer_commands(client: aiomqtt.Client, topics: Topics) -> None:
    async for message in client.messages:
        request = json.loads(message.payload)  # type: ignore[arg-type]
        await client.publish(topics.cmd_result, json.dumps({"id": request["id"], "ok": True, "mode": "hold"}), qos=1)


async def test_hostile_payloads_leave_the_command_link_working(mosquitto: Broker) -> None:
    cfg = configuration.load([configuration.DEFAULT_FILE], environ={},
                             overrides={"mqtt": {"host": "127.0.0.1", "port": mosquitto.port}})
    topics = Topics("nattery", "link1")
    session = MqttSession(cfg.mqtt, client_id="link1-app")
    link = BridgeLink(session, topics)
    async with session_running(session), aiomqtt.Client("127.0.0.1", mosquitto.port) as bridge:
        await bridge.subscribe(topics.cmd("refresh"), qos=1)
        responder = asyncio.create_task(_answer_commands(bridge, topics))
        try:
            for topic in (topics.cmd_result, topics.health, topics.telemetry, topics.status):
                for payload in HOSTILE:
                    await bridge.publish(topic, payload, qos=1)
            reply = await link.send("refresh", {}, timeout_s=10)
            assert reply.ok and reply.data == {"mode": "hold"}
            health = link.health()
            assert health["mqtt_connected"] is True and health["link"]["handler_errors"] == 0
            latest = link.latest()  # the one telemetry-shaped payload, its Infinity read as "not read"
            assert latest is not None and latest.roles == {"soc_pct": None}
        finally:
            responder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await responder
