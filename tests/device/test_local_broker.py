"""The broker of a local run matches topics correctly: mosquitto where installed, the embedded
amqtt otherwise (its replay of other clients' retained subscriptions corrected)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest
from structlog.testing import capture_logs

from common import logs
from device.ports import free_port, port_is_free
from device.services import brokers

BROKERS: dict[str, Callable[[int], contextlib.AbstractAsyncContextManager[int]]] = {
    "mosquitto": lambda port: brokers.mosquitto(_mosquitto(), port),
    "embedded": brokers.embedded_broker,
}


def _mosquitto() -> str:
    executable = brokers.mosquitto_executable()
    if executable is None:
        pytest.fail("mosquitto is not installed (bash .ci/run installs it)")
    return executable


@pytest.fixture(params=sorted(BROKERS))
async def broker_port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    async with BROKERS[request.param](0) as port:
        yield port


async def _retained_seen(port: int, *topic_filters: str) -> list[str]:
    """Topics a fresh client gets after subscribing ``topic_filters``, up to its own ``ping``
    (the broker replays retained messages before it handles the client's next publish)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"look-{'-'.join(topic_filters)}") as client:
        for topic_filter in (*topic_filters, "ping/look"):
            await client.subscribe(topic_filter, qos=1)
        await client.publish("ping/look", b"", qos=1)
        seen: list[str] = []
        async for message in client.messages:
            if message.topic.value == "ping/look":
                return seen
            seen.append(message.topic.value)
    raise AssertionError("the client's own ping never came back")


async def _publish_retained(port: int, *topics: str) -> None:
    """What the bridge and the app do: subscribe broadly, publish retained state."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="app", clean_session=False) as app:
        await app.subscribe("nattery/demo/#", qos=1)
        for topic in topics:
            await app.publish(topic, b"x", qos=1, retain=True)


async def test_a_subscriber_to_an_unrelated_topic_receives_nothing(broker_port: int) -> None:
    await _publish_retained(broker_port, "nattery/demo/status", "nattery/demo/health")
    async with aiomqtt.Client("127.0.0.1", broker_port, identifier="app", clean_session=False):
        assert await _retained_seen(broker_port, "nattery/demo/nothing-here") == []
    assert await _retained_seen(broker_port, "nattery/demo/status") == ["nattery/demo/status"]


async def test_a_plus_wildcard_replays_only_the_retained_messages_it_matches(broker_port: int) -> None:
    await _publish_retained(broker_port, "nattery/demo/status", "nattery/other/status", "nattery/demo/health",
                            "nattery/demo/cmd/status", "nattery/status")
    assert sorted(await _retained_seen(broker_port, "nattery/+/status")) == [
        "nattery/demo/status", "nattery/other/status"]


async def test_a_local_run_uses_mosquitto_where_installed_and_stops_it() -> None:
    _mosquitto()
    wanted = free_port()
    logs.configure("info", "console", cache=False)  # the start is an info event
    with capture_logs() as events:
        async with brokers.local_broker(wanted) as port:
            assert port == wanted and not port_is_free(port)
    started = [e for e in events if e["event"] == "mqtt broker listening"]
    assert [(e["broker"], e["port"]) for e in started] == [("mosquitto", wanted)]
    assert port_is_free(wanted)  # stopped with the run
