"""One MQTT session per process: the topic router, a failing handler, a broker restart (real mosquitto)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt

from device import config as configuration
from device.mqtt import MqttSession
from tests.conftest import Broker, session_running


def settings(broker: Broker) -> configuration.MqttSettings:
    return configuration.MqttSettings(host="127.0.0.1", port=broker.port)


class Inbox:
    """A handler that keeps what it gets; ``fail_on`` makes it raise for one payload."""

    def __init__(self, fail_on: bytes | None = None) -> None:
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.fail_on = fail_on

    async def __call__(self, topic: str, payload: bytes) -> None:
        if payload == self.fail_on:
            raise RuntimeError("handler bug")
        self.messages.put_nowait((topic, payload))

    async def next(self) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.messages.get(), 10)


async def test_routes_share_the_session_and_a_failing_handler_harms_nobody(mosquitto: Broker) -> None:
    session = MqttSession(settings(mosquitto), client_id="router-test")
    planner, page, everything = Inbox(), Inbox(fail_on=b"boom"), Inbox()
    session.route("n/dev/telemetry", planner)
    session.route("n/dev/telemetry", page)
    session.route("n/dev/#", everything)
    assert session.topic_filters == ["n/dev/telemetry", "n/dev/#"]
    async with session_running(session), aiomqtt.Client("127.0.0.1", mosquitto.port) as other:
        await other.publish("n/dev/telemetry", b"boom", qos=1)
        await other.publish("n/dev/telemetry", b"1", qos=1)
        await other.publish("n/dev/health", b"2", qos=1)
        assert await planner.next() == ("n/dev/telemetry", b"boom")  # the page's failure did not stop it
        assert await planner.next() == ("n/dev/telemetry", b"1")
        assert await page.next() == ("n/dev/telemetry", b"1")  # its own next message still arrives
        assert [await everything.next() for _ in range(3)] == [
            ("n/dev/telemetry", b"boom"), ("n/dev/telemetry", b"1"), ("n/dev/health", b"2")]
        assert session.handler_errors == 1 and session.connected.is_set()
        late = Inbox()
        session.route("n/dev/cmd/+", late)  # routed while connected: subscribed at once
        while True:  # the subscription is acknowledged asynchronously: publish until it is in
            await other.publish("n/dev/cmd/charge", b"3", qos=1)
            try:
                assert await asyncio.wait_for(late.messages.get(), 0.5) == ("n/dev/cmd/charge", b"3")
                break
            except TimeoutError:
                continue


async def test_after_a_broker_restart_routes_and_retained_state_come_back(mosquitto: Broker) -> None:
    session = MqttSession(settings(mosquitto), client_id="restart-test", status_topic="n/dev/status")
    inbox = Inbox()
    session.route("n/dev/cmd/dr_event", inbox)
    async with session_running(session):
        await session.publish_retained("n/dev/prices", {"today": "complete"})
        await session.publish_json("n/dev/plan", {"slots": 1}, retain=True)  # as the controller does
        await session.publish_json("n/dev/plan", {"slots": 2}, retain=True)  # the last one counts
        await asyncio.to_thread(mosquitto.restart)  # "persistence false": the broker forgot everything
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as other:
            await other.subscribe("n/dev/prices", qos=1)
            await other.subscribe("n/dev/status", qos=1)
            await other.subscribe("n/dev/plan", qos=1)
            got: dict[str, bytes] = {}
            async with asyncio.timeout(30):
                async for message in other.messages:
                    got[message.topic.value] = message.payload  # type: ignore[assignment]
                    if len(got) == 3:
                        break
            assert got == {"n/dev/prices": b'{"today":"complete"}', "n/dev/status": b"online",
                           "n/dev/plan": b'{"slots":2}'}
            # the session published them after re-subscribing: a command reaches the handler again
            await other.publish("n/dev/cmd/dr_event", b"{}", qos=1)
            assert await inbox.next() == ("n/dev/cmd/dr_event", b"{}")
    assert session.connects == 2


async def test_a_cancellation_arriving_with_the_acknowledgement_still_ends_a_publishing_loop(
    mosquitto: Broker,
) -> None:
    """Python 3.11's asyncio.wait_for (inside aiomqtt's publish) returns normally when the broker's
    acknowledgement and a cancellation arrive together; the loop must end all the same."""
    session = MqttSession(settings(mosquitto), client_id="cancel-test")
    async with session_running(session):
        assert session._client is not None
        paho = session._client._client
        acknowledge = paho.on_publish
        assert acknowledge is not None
        publishing: list[asyncio.Task[None]] = []

        def acknowledge_and_cancel(*args: Any) -> None:
            acknowledge(*args)  # the PUBACK completes the publish …
            publishing[0].cancel()  # … and the shutdown's cancel arrives in the same loop step

        async def health_loop() -> None:  # the shape of the bridge's and the app's health loops
            while True:
                await session.publish("n/dev/health", b"{}", retain=True, qos=1)
                await asyncio.sleep(3600)

        paho.on_publish = acknowledge_and_cancel
        publishing.append(asyncio.create_task(health_loop()))
        done, _ = await asyncio.wait(publishing, timeout=10)
        paho.on_publish = acknowledge
        assert done and publishing[0].cancelled(), "the loop swallowed its cancellation"
