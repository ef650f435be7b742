"""When the next RTU frame may go out: the gap after every transaction and the stale-reply guard.

RTU frames carry no transaction id, so a late reply to a timed-out request looks exactly like the
answer to the next one. After a timeout or a foreign reply the line is kept free until the
longest possible late reply (a maximal RTU frame at the line's baud rate plus the gap) is over,
extended while bytes keep arriving, bounded so a babbling line cannot stall the queue forever.
"""

from __future__ import annotations

from device.clock import Clock

MAX_RTU_ADU = 256  # bytes: the longest frame any Modbus RTU device may send


class LineGuard:
    """Line timing for one port; ``gap_s`` and ``char_s`` come from the register map's protocol."""

    def __init__(self, gap_s: float, char_s: float, clock: Clock) -> None:
        self.gap_s = gap_s
        self.char_s = char_s
        self.clock = clock
        self.outstanding = False  # a request is on the wire and its reply not yet in
        self.rx_during_request = False  # bytes arrived while it was (a corrupt frame, not silence)
        self._quiet_until = 0.0  # monotonic time before which no frame may go out
        self._guarding = False
        self._guard_until = 0.0
        self._rx_at = 0.0  # monotonic time of the last bytes received

    def received(self) -> None:
        """Bytes arrived on the line (called by the client's packet tracer)."""
        self._rx_at = self.clock.monotonic()
        self.rx_during_request = self.rx_during_request or self.outstanding

    def begin(self) -> None:
        """A request goes out now."""
        self.rx_during_request, self.outstanding = False, True

    def end(self) -> None:
        """The transaction is over (answered or not): the gap starts now."""
        self.outstanding = False
        self._quiet_until = self.clock.monotonic() + self.gap_s

    def hold(self, seconds: float) -> None:
        """Keep the line free for ``seconds`` from now (a gateway that needs a pause after a
        connect before it answers: Huawei's SDongle)."""
        self._quiet_until = max(self._quiet_until, self.clock.monotonic() + seconds)

    def guard_late_reply(self) -> None:
        """After a timeout or a foreign reply: keep the line free until a late reply is over.

        A reply that starts the moment we give up lasts at most a maximal RTU frame; the gap is
        the margin. :meth:`wait_quiet` extends this while bytes keep arriving.
        """
        self._guarding = True
        self._guard_until = self.clock.monotonic() + MAX_RTU_ADU * self.char_s + self.gap_s

    async def wait_quiet(self) -> None:
        """Wait until the next frame may go out: a gap after the last transaction and, after a
        timeout, until a late reply had time to finish and the line has been silent for a gap
        (bounded, so a babbling line cannot stall the queue forever)."""
        clock = self.clock
        if self._guarding:
            self._guarding = False
            self._quiet_until = max(self._quiet_until, self._guard_until)
            limit = self._guard_until + 2 * MAX_RTU_ADU * self.char_s
            quiet = max(self.gap_s, 3.5 * self.char_s)
            await clock.sleep(self._quiet_until - clock.monotonic())
            while (silent := clock.monotonic() - self._rx_at) < quiet and clock.monotonic() < limit:
                await clock.sleep(quiet - silent)
        await clock.sleep(self._quiet_until - clock.monotonic())
