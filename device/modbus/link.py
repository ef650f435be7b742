"""Link supervision: the connection to the adapter, opened, watched and reopened.

pymodbus' own reconnects are off; this part opens the client in the worker's task (a missing
adapter at start is not fatal), notices when the adapter disappears (USB pulled, pty closed) and
reopens it with a delay that doubles from ``reconnect_s`` up to ``reconnect_max_s``.
"""

from __future__ import annotations

import structlog
from pymodbus.client.base import ModbusBaseClient

from common.backoff import Backoff
from device.clock import Clock
from device.modbus.client import ClientFactory, TracePacket, TracePdu

log = structlog.get_logger(__name__)


class Link:
    def __init__(
        self,
        factory: ClientFactory,
        *,
        port: str,
        reconnect_s: float,
        reconnect_max_s: float,
        clock: Clock,
        trace_packet: TracePacket,
        trace_pdu: TracePdu,
    ) -> None:
        self._factory = factory
        self.port = port
        self.clock = clock
        self._trace = (trace_packet, trace_pdu)
        self.client: ModbusBaseClient | None = None
        self.up = False
        self.error = ""  # why the last connect failed
        self.reconnects = 0  # connections after the first one
        self._ever_connected = False
        self._connect_failed = False
        self._backoff = Backoff(reconnect_s, reconnect_max_s)
        self._next_connect_at = 0.0

    @property
    def connect_due(self) -> bool:
        return not self.up and self.clock.monotonic() >= self._next_connect_at

    @property
    def next_connect_in(self) -> float:
        """Seconds until the next connect attempt (0 when due)."""
        return max(0.0, self._next_connect_at - self.clock.monotonic())

    async def connect(self) -> bool:
        """Open a fresh client; on failure, schedule the next attempt a growing delay later."""
        self.close()
        client = self._factory(trace_packet=self._trace[0], trace_pdu=self._trace[1])
        error = "cannot open or connect"
        try:
            ok = await client.connect()
        except Exception as exc:  # noqa: BLE001 — a bad device path or refused socket: keep retrying
            ok, error = False, str(exc)
        if ok and client.connected:
            self.client, self.up = client, True
            self._backoff.reset()
            if self._ever_connected:
                self.reconnects += 1
                log.info("modbus_link_restored", port=self.port)
            elif self._connect_failed:
                log.info("modbus_link_up", port=self.port)
            self._ever_connected, self._connect_failed = True, False
            return True
        client.close()
        self.error = f"connect: {error}"
        if not self._ever_connected and not self._connect_failed:
            log.warning("modbus_link_unavailable", port=self.port, error=error)
        self._connect_failed = True
        self._next_connect_at = self.clock.monotonic() + self._backoff.next()
        return False

    def check(self) -> None:
        """Notice a client that lost its connection; the next connect is a delay from now."""
        if self.up and (self.client is None or not self.client.connected):
            log.warning("modbus_link_lost", port=self.port)
            self.close()
            self._next_connect_at = self.clock.monotonic() + self._backoff.upcoming

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        self.up = False
