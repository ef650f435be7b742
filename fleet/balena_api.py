"""The ``balena-sdk`` client, pointed at Balena Cloud or at another API (a stand-in in tests).

The SDK derives its API address from ``balena_host`` (``https://api.<host>/``) unless its settings
file says otherwise, so another address is written into a private settings file
(``balena.cfg``, the SDK's own format) that only this process reads. The API key comes from
``BALENA_API_KEY``, which the SDK reads itself.
"""

from __future__ import annotations

import configparser
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SETTINGS_SECTION = "Settings"


@contextmanager
def connect(api_url: str | None) -> Iterator[Any]:
    """A ``balena.Balena`` for ``api_url`` (e.g. ``http://127.0.0.1:8123/``); None: Balena Cloud."""
    from balena import Balena
    from balena.settings import DEFAULT_SETTINGS

    if api_url is None:
        yield Balena({"data_directory": False})
        return
    with tempfile.TemporaryDirectory(prefix="nattery-fleet-") as name:
        yield Balena({"data_directory": _settings_file(Path(name), api_url, DEFAULT_SETTINGS)})


def _settings_file(directory: Path, api_url: str, defaults: dict[str, Any]) -> str:
    url = api_url.rstrip("/") + "/"
    settings = {
        **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in defaults.items()},
        "api_endpoint": url, "builder_url": url, "pine_endpoint": f"{url}{defaults['api_version']}/",
        "data_directory": str(directory), "cache_directory": str(directory / "cache"),
    }
    parser = configparser.ConfigParser(interpolation=None)
    parser[SETTINGS_SECTION] = settings
    with (directory / "balena.cfg").open("w") as f:
        parser.write(f)
    return str(directory)
