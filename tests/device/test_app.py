"""The app's glue: the homeowner's settings from the web page reach the planner."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device import config as configuration
from device.app import follow_home_settings, supervise
from device.planner import ModeRequest
from device.home.settings import SettingsFile, make_override, update_sections


@dataclass
class PlannerRecorder:
    """Records what the watcher hands to ``PlanningService.reconfigure``."""

    calls: list[tuple[configuration.Config, ModeRequest]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def reconfigure(self, cfg: configuration.Config, request: ModeRequest) -> None:
        self.calls.append((cfg, request))
        self.changed.set()

    async def next(self) -> tuple[configuration.Config, ModeRequest]:
        self.changed.clear()
        await asyncio.wait_for(self.changed.wait(), 5)
        return self.calls[-1]


async def test_page_changes_reach_the_planner_and_overrides_expire(tmp_path: Path) -> None:
    cfg = configuration.load([configuration.DEFAULT_FILE], environ={},
                             overrides={"device": {"data_dir": str(tmp_path)}})
    settings = SettingsFile.for_config(cfg)
    planner = PlannerRecorder()
    now = [1_800_000_000.0]
    watcher = asyncio.create_task(
        follow_home_settings(cfg, settings, planner, clock=lambda: now[0], poll_s=0.01)  # type: ignore[arg-type]
    )
    try:
        first_cfg, first = await planner.next()
        assert first.mode == cfg.planner.mode and first_cfg.battery.reserve_pct == cfg.battery.reserve_pct

        home = update_sections(await settings.load(), cfg, {"battery": {"reserve_pct": 35}})
        await settings.save(home)
        changed_cfg, _ = await planner.next()
        assert changed_cfg.battery.reserve_pct == 35

        override = make_override("charge", 2000, now[0] + 3600, now[0], {"charge": 5000, "discharge": 5000})
        await settings.save(home.__class__(sections=home.sections, override=override))
        _, manual = await planner.next()
        assert (manual.mode, manual.action, manual.power_w, manual.until) == ("manual", "charge", 2000, now[0] + 3600)

        now[0] += 3601  # the override ran out: back to the standing mode, reserve kept
        back_cfg, back = await planner.next()
        assert back.mode == cfg.planner.mode and back_cfg.battery.reserve_pct == 35
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_supervise_restarts_a_crashing_job() -> None:
    runs: list[int] = []

    async def flaky() -> Any:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")

    await asyncio.wait_for(supervise("flaky", flaky, backoff_max_s=0.01), 10)
    assert len(runs) == 3
