"""``python -m device.services.healthcheck``: the bridge service's container health check.

Healthy means a fresh ``health`` message from the bridge arrives within three health intervals:
the bridge is running, its loops are turning and it reaches the broker. The retained copy the
broker hands out on subscribing is skipped, since it may be the last word of a bridge that has
since hung. Exit 0 when healthy, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import asyncio
import sys

import aiomqtt

from device import config as configuration
from device.mqtt import Topics


async def fresh_health(cfg: configuration.Config, timeout_s: float) -> bool:
    """Whether a non-retained ``health`` message of the bridge arrives within ``timeout_s``."""
    topic = Topics(cfg.mqtt.prefix, cfg.device.id).health
    async with aiomqtt.Client(
        cfg.mqtt.host or "127.0.0.1", cfg.mqtt.port, username=cfg.mqtt.username or None,
        password=cfg.mqtt.password or None, identifier=f"{cfg.device.id}-healthcheck", timeout=timeout_s,
    ) as client:
        await client.subscribe(topic, qos=0)
        try:
            async with asyncio.timeout(timeout_s):
                async for message in client.messages:
                    if not message.retain:
                        return True
        except TimeoutError:
            return False
    return False


def main() -> None:
    try:
        cfg = configuration.load()
        timeout_s = 3 * cfg.bridge.health_interval_s
        healthy = asyncio.run(fresh_health(cfg, timeout_s))
    except (configuration.ConfigError, aiomqtt.MqttError, OSError) as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        sys.exit(1)
    if not healthy:
        print(f"healthcheck: no health from the bridge within {timeout_s:g} s", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
