"""The ``nattery`` command: a thin layer over the library.

Each command loads the configuration, calls into the library and turns known errors into a
one-line reason with a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from device import config as configuration
from device import logs
from device.modbus.registermap import MapError
from device.store import StoreError

F = TypeVar("F", bound=Callable[..., Any])
KNOWN_ERRORS = (configuration.ConfigError, MapError, StoreError, OSError)


def config_option(fn: F) -> F:
    """``--config FILE`` (an installer file in place of /data/nattery.yaml)."""
    return click.option(
        "--config",
        "config_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Installer configuration file (default /data/nattery.yaml when present).",
    )(fn)


def load_config(config_file: Path | None, **overrides: dict[str, Any]) -> configuration.Config:
    files = None if config_file is None else [configuration.DEFAULT_FILE, config_file]
    try:
        cfg = configuration.load(files, overrides={k: v for k, v in overrides.items() if v})
    except configuration.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    logs.configure(cfg.log.level, cfg.log.format)
    return cfg


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine; known errors become a one-line reason and exit status 1."""
    try:
        return asyncio.run(main)
    except KNOWN_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nattery")
def main() -> None:
    """nattery: home-battery appliance (Modbus bridge, planner, local web page, cloud sync)."""

