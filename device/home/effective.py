"""The one owner of the effective configuration of a running appliance.

Effective = the loaded configuration (shipped defaults ← installer file ← environment, see
:mod:`device.config`) with the homeowner's settings (:mod:`device.home.settings`) applied. Every
consumer in the app reads :attr:`EffectiveSettings.config` when it needs a value (the planner
each time it plans, settlement each time it settles, the web page each request) or subscribes to
be told at once when the homeowner changes something. Changes go through :meth:`change`, which
validates, writes ``settings.json`` atomically and then notifies the subscribers — nobody polls
the file.

The manual override (charge/discharge until a time) is not configuration; :meth:`override` says
whether one runs at a given moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog

from device.config import Config, ConfigError
from device.home.settings import SETTINGS_FILE, HomeSettings, Override, SettingsFile

log = structlog.get_logger(__name__)

Listener = Callable[[], None]


class EffectiveSettings:
    """Installer configuration + homeowner settings, observable. Build with :meth:`open`."""

    def __init__(self, base: Config, file: SettingsFile, home: HomeSettings | None = None) -> None:
        self.base = base
        self.file = file
        self._home = HomeSettings()
        self._config = base
        self._listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        if home is not None:
            self._adopt(home)

    @classmethod
    async def open(cls, base: Config, data_dir: Path | None = None) -> EffectiveSettings:
        """The settings of the device whose data volume is ``data_dir`` (default ``device.data_dir``)."""
        file = SettingsFile((data_dir or base.device.data_dir) / SETTINGS_FILE)
        return cls(base, file, await file.load())

    @property
    def config(self) -> Config:
        """The effective configuration now."""
        return self._config

    @property
    def home(self) -> HomeSettings:
        """The homeowner's settings as stored."""
        return self._home

    def override(self, now: float) -> Override | None:
        """The manual override running at ``now``, if any."""
        return self._home.active_override(now)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every change; returns the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def change(self, edit: Callable[[HomeSettings], HomeSettings]) -> HomeSettings:
        """Apply ``edit`` to the current homeowner settings, store the result, tell the subscribers.

        Edits are serialised, so two pages saving at once never lose one of the changes, and start
        from the file as it is (another process, ``nattery commission``, may have changed it).
        ``edit`` raises to refuse; a result the configuration rejects raises ``ConfigError``.
        """
        async with self._lock:
            updated = edit(await self.file.load())
            effective = updated.apply(self.base)
            await self.file.save(updated)
            self._home, self._config = updated, effective
        for listener in list(self._listeners):
            listener()
        return updated

    def _adopt(self, home: HomeSettings) -> None:
        try:
            self._config = home.apply(self.base)
        except ConfigError as exc:  # the page validates; a hand-edited file may not be
            log.error("homeowner settings ignored", path=str(self.file.path), error=str(exc))
            self._config = self.base
        self._home = home
