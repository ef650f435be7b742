"""Where the simulated PV and house load come from: a clear-sky day, or a recorded profile.

Without data the simulator still shows a believable day: PV follows the sun's elevation at the
configured place and date (no clouds), the load has a night base and morning and evening peaks
by local clock time. A 15-minute profile CSV (``timestamp_utc, load_kw, pv_kw_per_kwp``, as in
``shared/data/household``) replaces both; any simulated date maps onto the same day of year of
the profile, so a 2024 profile serves a simulation in 2027.
"""

from __future__ import annotations

import bisect
import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from common.utc import parse_utc

SLOT_S = 900.0


class Source(Protocol):
    def pv_w_per_kwp(self, t: float) -> float: ...

    def load_w(self, t: float) -> float: ...


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


@dataclass(frozen=True)
class ClearSky:
    """Clear-sky PV from solar elevation; a typical household's daily load shape."""

    latitude: float = 52.52
    longitude: float = 13.40
    timezone: str = "Europe/Berlin"

    def pv_w_per_kwp(self, t: float) -> float:
        when = datetime.fromtimestamp(t, UTC)
        day = when.timetuple().tm_yday
        declination = math.radians(23.44) * math.sin(2 * math.pi * (284 + day) / 365)
        solar_hour = when.hour + when.minute / 60 + when.second / 3600 + self.longitude / 15
        hour_angle = math.radians(15 * (solar_hour - 12))
        lat = math.radians(self.latitude)
        sin_elevation = (math.sin(lat) * math.sin(declination)
                         + math.cos(lat) * math.cos(declination) * math.cos(hour_angle))
        # ~0.85 kW per kWp with the sun overhead; the air mass makes low sun weaker still.
        return 850.0 * max(0.0, sin_elevation) ** 1.2

    def load_w(self, t: float) -> float:
        local = datetime.fromtimestamp(t, ZoneInfo(self.timezone))
        hour = local.hour + local.minute / 60
        return (250.0 + 700.0 * _bump(hour, 7.5, 1.0) + 250.0 * _bump(hour, 12.5, 1.5)
                + 1000.0 * _bump(hour, 19.0, 1.5))


class Profile:
    """A recorded 15-minute profile, linearly interpolated."""

    def __init__(self, times: list[float], load_w: list[float], pv_w_per_kwp: list[float]) -> None:
        if len(times) < 2:
            raise ValueError("profile: needs at least two rows")
        self.times, self._load, self._pv = times, load_w, pv_w_per_kwp
        middle = datetime.fromtimestamp(times[len(times) // 2], UTC)
        self.year_start = datetime(middle.year, 1, 1, tzinfo=UTC).timestamp()

    @classmethod
    def from_csv(cls, path: Path) -> Profile:
        """Read a profile file (blocking: call through ``asyncio.to_thread`` on a loop)."""
        times, load, pv = [], [], []
        with path.open(newline="", encoding="utf-8") as fh:
            for line, row in enumerate(csv.DictReader(fh), start=2):
                try:
                    times.append(parse_utc(row["timestamp_utc"]))
                    load.append(1000.0 * float(row["load_kw"]))
                    pv.append(1000.0 * float(row["pv_kw_per_kwp"]))
                except (KeyError, ValueError) as exc:
                    raise ValueError(
                        f"{path}:{line}: expected timestamp_utc, load_kw, pv_kw_per_kwp ({exc})"
                    ) from None
        return cls(times, load, pv)

    def _at(self, series: list[float], t: float) -> float:
        when = datetime.fromtimestamp(t, UTC)
        into_year = t - datetime(when.year, 1, 1, tzinfo=UTC).timestamp()
        span = self.times[-1] - self.times[0] + SLOT_S
        x = self.times[0] + (self.year_start + into_year - self.times[0]) % span
        i = bisect.bisect_right(self.times, x) - 1
        if i >= len(self.times) - 1:
            return series[-1]
        frac = (x - self.times[i]) / (self.times[i + 1] - self.times[i])
        return series[i] + frac * (series[i + 1] - series[i])

    def pv_w_per_kwp(self, t: float) -> float:
        return self._at(self._pv, t)

    def load_w(self, t: float) -> float:
        return self._at(self._load, t)
