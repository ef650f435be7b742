"""The defective-inverter tracker: an inverter that stopped answering is backed off and probed.

After ``defective_after`` failed requests in a row, requests fail fast with
:class:`InverterDefective` and only one probe request goes out per interval, which doubles after
each failed probe up to a cap (the OpenEMS ``DefectiveComponents`` pattern). Any answer, an
exception reply too, recovers. Only the transitions are logged.
"""

from __future__ import annotations

import structlog

from common.backoff import Backoff
from device.clock import Clock
from device.modbus.requests import InverterDefective

log = structlog.get_logger(__name__)


class DefectiveTracker:
    def __init__(
        self, *, port: str, defective_after: int, probe_s: float, probe_max_s: float, clock: Clock
    ) -> None:
        self.port = port
        self.defective_after = defective_after
        self.clock = clock
        self.failures = 0  # failed requests in a row
        self.defective = False
        self.last_error = ""
        self.last_success: float | None = None  # epoch seconds
        self._probe = Backoff(probe_s, probe_max_s)  # counts failed probes
        self._next_probe_at = 0.0

    def admit(self) -> bool:
        """Whether a request may go out now; True when it is a probe of a defective inverter.

        Raises :class:`InverterDefective` while backed off.
        """
        if not self.defective:
            return False
        now = self.clock.monotonic()
        if now < self._next_probe_at:
            raise InverterDefective(
                f"inverter not answering ({self.failures} failed requests, last: {self.last_error}); "
                f"backed off, next probe in {self._next_probe_at - now:.1f} s")
        return True

    def next_probe_in(self) -> float | None:
        """Seconds until the next probe, None while the inverter is not defective."""
        if not self.defective:
            return None
        return round(max(0.0, self._next_probe_at - self.clock.monotonic()), 3)

    def alive(self) -> None:
        """The inverter answered."""
        self.last_success = self.clock.time()
        if self.failures or self.defective:
            log.info("inverter_recovered", port=self.port, after_failures=self.failures)
        self.failures, self.defective = 0, False
        self._probe.reset()

    def failed(self, error: str, probing: bool) -> None:
        """A request got no usable answer (timeout, corrupt or foreign reply)."""
        self.failures += 1
        self.last_error = error
        if self.failures == 1:
            log.warning("inverter_request_failed", port=self.port, error=error)
        if probing:
            self._probe.next()  # a failed probe: the next one waits longer
        elif self.failures >= self.defective_after:
            self.defective = True
            log.error("inverter_defective", port=self.port, failures=self.failures,
                      probe_in_s=self._probe.upcoming, error=error)
        if self.defective:
            self._next_probe_at = self.clock.monotonic() + self._probe.upcoming
