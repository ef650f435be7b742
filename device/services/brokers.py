"""The MQTT broker of a local run (``nattery run`` with an empty ``mqtt.host``).

mosquitto where it is installed: started on 127.0.0.1 with a generated configuration (anonymous
access, this run only, no persistence) and stopped when the run ends. Otherwise the embedded amqtt
broker, with its replay of retained messages corrected (see :func:`embedded_broker`). Either way
a busy port (say a system mosquitto on 1883) makes it pick a free one; the log says which.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from device.config import ConfigError
from device.ports import free_port, port_is_free

log = structlog.get_logger(__name__)

#: Debian installs mosquitto in /usr/sbin, which is not on every user's PATH.
MOSQUITTO_PLACES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_executable() -> str | None:
    found = shutil.which("mosquitto")
    return found or next((place for place in MOSQUITTO_PLACES if os.access(place, os.X_OK)), None)


@contextlib.asynccontextmanager
async def local_broker(port: int, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """mosquitto if installed, the embedded broker otherwise; yields the port it listens on."""
    executable = mosquitto_executable()
    broker = mosquitto(executable, port, host) if executable else embedded_broker(port, host)
    async with broker as chosen:
        yield chosen


def _usable_port(port: int, host: str) -> int:
    """``port``, or a free one when it is 0 or taken."""
    if port and port_is_free(port, host):
        return port
    chosen = free_port(host)
    if port:
        log.warning("mqtt port busy, the local broker uses another", wanted=port, port=chosen)
    return chosen


@contextlib.asynccontextmanager
async def mosquitto(executable: str, port: int, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A mosquitto process of this run's own, listening on ``host`` only."""
    port = _usable_port(port, host)
    with tempfile.TemporaryDirectory(prefix="nattery-mosquitto-") as directory:
        conf, output = Path(directory) / "mosquitto.conf", Path(directory) / "mosquitto.log"
        conf.write_text(
            f"listener {port} {host}\nallow_anonymous true\npersistence false\nlog_dest file {output}\n"
        )
        with output.open("ab") as sink:  # its own lines stay out of our JSON log
            process = await asyncio.create_subprocess_exec(
                executable, "-c", str(conf), stdin=asyncio.subprocess.DEVNULL, stdout=sink, stderr=sink
            )
        try:
            await _listening(process, host, port, output)
            log.info("mqtt broker listening", broker="mosquitto", host=host, port=port)
            yield port
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 10)
                except TimeoutError:
                    process.kill()
                    await process.wait()


async def _listening(process: asyncio.subprocess.Process, host: str, port: int, output: Path) -> None:
    """Return once mosquitto accepts connections; a clear error if it ends or hangs instead."""
    async with asyncio.timeout(10):
        while process.returncode is None:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                await asyncio.sleep(0.05)  # not listening yet: mosquitto starts in a few ms
                continue
            writer.close()
            return
    said = output.read_text(errors="replace").strip().splitlines()  # noqa: ASYNC240 — a few lines, process ended
    raise ConfigError(f"mqtt: mosquitto on {host}:{port} ended at start (exit {process.returncode}): "
                      f"{said[-1] if said else 'no output'}")


@contextlib.asynccontextmanager
async def embedded_broker(port: int, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """An in-process MQTT broker (amqtt) for local runs without mosquitto."""
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise ConfigError("mqtt.host: empty asks for a local broker: install mosquitto, or the 'local' extra "
                          "(pip install 'nattery[local]'); or set mqtt.host to a running broker") from None

    class MatchingBroker(Broker):  # type: ignore[misc]
        """amqtt 0.12 replays, to every client that connects, the retained messages matching *every*
        filter any client subscribed (``Broker.client_connected`` loops over all ``_subscriptions``):
        a subscriber to ``nattery/demo/nothing-here`` got the retained ``status`` and ``health``
        meant for the app. Only a filter the session itself holds may replay anything."""

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            holders: Any = self._subscriptions.get(subscription[0], ())
            if any(held.client_id == session.client_id for held, _ in holders):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    port = _usable_port(port, host)
    broker = MatchingBroker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    log.info("mqtt broker listening", broker="embedded", host=host, port=port)
    try:
        yield port
    finally:
        await broker.shutdown()
