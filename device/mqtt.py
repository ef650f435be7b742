"""MQTT plumbing shared by the bridge and the app: topics, a reconnecting session, the command channel.

Topics live under ``<prefix>/<device_id>/`` (see the README's topic table). :class:`MqttSession`
is a process's one aiomqtt client, connected for the life of the process: it reconnects with a
capped backoff after a broker restart, re-subscribes every routed filter, re-publishes the
retained state and hands each message to the handlers routed for its topic — one that raises is
logged and counted (``handler_errors``), never the end of the session, so no payload can cut a
process off the broker. Publishing while the broker is away raises :class:`NotConnected` so
callers decide whether a message is worth keeping (telemetry is in SQLite anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog

from common.backoff import Backoff
from device import commands
from device.config import MqttSettings

log = structlog.get_logger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


class NotConnected(RuntimeError):
    """The broker is not reachable right now."""


@dataclass(frozen=True)
class Topics:
    """Topic names of one device."""

    prefix: str
    device_id: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.base}/telemetry"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def app_health(self) -> str:
        """The app's health (the bridge's is ``health``)."""
        return f"{self.base}/health/app"

    @property
    def alerts(self) -> str:
        """The active alerts (retained list); their changes go to ``alerts/events``."""
        return f"{self.base}/alerts"

    @property
    def alert_events(self) -> str:
        return f"{self.base}/alerts/events"

    @property
    def plan(self) -> str:
        return f"{self.base}/plan"

    @property
    def prices(self) -> str:
        return f"{self.base}/prices"

    def cmd(self, action: str) -> str:
        return f"{self.base}/cmd/{action}"

    @property
    def cmd_result(self) -> str:
        return f"{self.base}/cmd/result"

    @property
    def cmd_all(self) -> str:
        return f"{self.base}/cmd/+"

    def action_of(self, topic: str) -> str | None:
        """``nattery/dev/cmd/charge`` → ``charge``; None for other topics and for the result topic."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        action = topic[len(head):]
        return None if action == "result" else action


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True)
class Route:
    """Messages on ``topic_filter`` (MQTT wildcards ``+`` and ``#``) go to ``handler``; those the
    broker replays from its retained store go to ``retained`` when given (a command published
    with retain=true must not run again at every start)."""

    topic_filter: str
    handler: Handler
    retained: Handler | None = None

    def handler_for(self, topic: aiomqtt.Topic, retain: bool) -> Handler | None:
        if not topic.matches(self.topic_filter):
            return None
        return self.retained if retain and self.retained is not None else self.handler


class MqttSession:
    """The one long-lived, self-healing MQTT connection of a process, with a topic router.

    Parts of the process register what they listen to with :meth:`route` (each filter is
    subscribed once, however many parts want it, and again after every reconnect) and publish
    through the session. A handler that raises is logged and counted (``handler_errors``); the
    other handlers still get the message and the session goes on. ``status_topic`` gets a
    retained ``online`` on every (re)connect and is the LWT (``offline``); whatever else is
    published retained is published again after a reconnect (the last message per topic), so a
    broker restarted without its retained store gets it back.
    """

    def __init__(
        self,
        settings: MqttSettings,
        *,
        client_id: str,
        status_topic: str | None = None,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.status_topic = status_topic
        self.reconnect_max_s = reconnect_max_s
        self.routes: list[Route] = []
        self._retained: dict[str, bytes] = {}
        self._client: aiomqtt.Client | None = None
        self._subscribing: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self.connects = 0
        self.disconnects = 0
        self.handler_errors = 0

    def route(self, topic_filter: str, handler: Handler, *, retained: Handler | None = None) -> None:
        """Send messages on ``topic_filter`` to ``handler`` (and replayed retained ones to
        ``retained`` when given) from now on; subscribes at once when connected."""
        new = all(r.topic_filter != topic_filter for r in self.routes)
        self.routes.append(Route(topic_filter, handler, retained))
        client = self._client
        if new and client is not None and self.connected.is_set():
            task = asyncio.create_task(self._subscribe_late(client, topic_filter))
            self._subscribing.add(task)
            task.add_done_callback(self._subscribing.discard)

    @property
    def topic_filters(self) -> list[str]:
        """Every routed filter once, in the order first routed."""
        return list(dict.fromkeys(r.topic_filter for r in self.routes))

    async def _subscribe_late(self, client: aiomqtt.Client, topic_filter: str) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # lost meanwhile: the reconnect subscribes
            await client.subscribe(topic_filter, qos=1)

    async def publish_retained(self, topic: str, payload: Any, *, qos: int = 1) -> None:
        """Publish ``payload`` (JSON) retained now if connected; either way after every reconnect."""
        with contextlib.suppress(NotConnected):
            await self.publish(topic, dumps(payload), retain=True, qos=qos)

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 0) -> None:
        """Publish now, or raise :class:`NotConnected`. A retained message is also kept and
        published again after every reconnect (the last one per topic)."""
        if retain and topic != self.status_topic:
            self._retained[topic] = payload.encode() if isinstance(payload, str) else payload
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnected(topic)
        task = asyncio.current_task()
        cancels_before = 0 if task is None else task.cancelling()
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise NotConnected(f"{topic}: {exc}") from exc
        if task is not None and task.cancelling() > cancels_before:
            # aiomqtt awaits the broker's acknowledgement with asyncio.wait_for, which in Python
            # 3.11 returns normally when the acknowledgement and a cancellation arrive together:
            # the cancellation would be lost and a loop ``publish; sleep`` would never end.
            raise asyncio.CancelledError

    async def publish_json(self, topic: str, payload: Any, *, retain: bool = False, qos: int = 0) -> None:
        await self.publish(topic, dumps(payload), retain=retain, qos=qos)

    async def run(self) -> None:
        """Connect, serve messages, reconnect on loss; returns only when cancelled."""
        backoff = Backoff(min(0.5, self.reconnect_max_s), self.reconnect_max_s)
        was_lost = False
        while True:
            will = (
                aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True)
                if self.status_topic
                else None
            )
            client = aiomqtt.Client(
                self.settings.host or "127.0.0.1",
                self.settings.port,
                username=self.settings.username or None,
                password=self.settings.password or None,
                identifier=self.client_id,
                will=will,
                keepalive=30,
                timeout=10,
            )
            try:
                async with client:
                    self._client = client
                    for topic_filter in self.topic_filters:
                        await client.subscribe(topic_filter, qos=1)
                    if self.status_topic:
                        await client.publish(self.status_topic, b"online", qos=1, retain=True)
                    for topic, data in list(self._retained.items()):
                        await client.publish(topic, data, qos=1, retain=True)
                    self.connects += 1
                    self.connected.set()
                    backoff.reset()
                    log.info("mqtt connected" if not was_lost else "mqtt reconnected",
                             host=self.settings.host or "127.0.0.1", port=self.settings.port)
                    async for message in client.messages:
                        await self._deliver(message)
            except aiomqtt.MqttError as exc:
                if self.connected.is_set() or not was_lost:
                    log.warning("mqtt connection lost", error=str(exc), retry_in_s=backoff.upcoming)
                was_lost = True
            finally:
                if self.connected.is_set():
                    self.disconnects += 1
                self.connected.clear()
                self._client = None
            await asyncio.sleep(backoff.next())

    async def _deliver(self, message: aiomqtt.Message) -> None:
        handlers = [h for r in self.routes if (h := r.handler_for(message.topic, message.retain)) is not None]
        if not handlers:
            return
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        for handler in handlers:
            try:
                await handler(message.topic.value, payload)
            except Exception as exc:  # noqa: BLE001 — one message must never end the session
                self.handler_errors += 1
                log.error("mqtt message handler failed", topic=message.topic.value, error=repr(exc)[:500],
                          client=self.client_id, handler=getattr(handler, "__qualname__", repr(handler)))

    async def close(self, final_status: bytes | None = b"offline") -> None:
        """Publish a last retained status (a clean shutdown is not an LWT) before cancelling ``run``."""
        if final_status is not None and self.status_topic and self.connected.is_set():
            with contextlib.suppress(NotConnected, asyncio.TimeoutError):
                await asyncio.wait_for(self.publish(self.status_topic, final_status, retain=True, qos=1), 2)


class CommandChannel:
    """Commands to the bridge: ``cmd/<action>`` with a fresh id and the time sent (``ts``, so a
    command delayed or replayed by the broker is refused), answered on ``cmd/result``.

    Several senders (the web page, the controller) share the one result topic; each waits only
    for the reply carrying its own id. Feed every ``cmd/result`` payload to :meth:`on_result`.
    """

    def __init__(self, topics: Topics, publish: Callable[..., Awaitable[None]], sender: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.topics = topics
        self._publish = publish
        self._sender = sender
        self._clock = clock  # the bridge judges ``ts`` on the appliance's time
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def send(self, action: str, args: Mapping[str, Any], timeout_s: float) -> dict[str, Any]:
        """The bridge's reply (``ok`` true or false, ``error``, further fields).

        Raises :class:`NotConnected` when the broker is away, ``TimeoutError`` without a reply."""
        command_id = f"{self._sender}-{secrets.token_hex(6)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        try:
            message = {"id": command_id, "ts": round(self._clock(), 3), **args}
            await self._publish(self.topics.cmd(action), message, qos=1)
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._pending.pop(command_id, None)

    def on_result(self, payload: bytes) -> None:
        try:
            reply = commands.loads(payload)
        except ValueError:
            return
        if not isinstance(reply, dict):
            return
        future = self._pending.get(str(reply.get("id")))
        if future is not None and not future.done():
            future.set_result(reply)
