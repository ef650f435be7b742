"""Structured logging: one processor chain everywhere, JSON off a TTY, console on one.

Call :func:`configure` once per process (the CLI does). Library code only does
``log = structlog.get_logger(__name__)`` and logs events with keys, never formatted strings.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
SECRET_KEYS = frozenset({"password", "token", "secret", "credential", "authorization", "api_key"})


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask any value whose key looks like a secret, wherever it was logged from."""
    for key in event_dict:
        if any(word in key.lower() for word in SECRET_KEYS):
            event_dict[key] = "<redacted>"
    return event_dict


def configure(level: str = "info", fmt: str = "auto", *, cache: bool = True) -> None:
    """Configure structlog (and route stdlib logging of libraries through the same level).

    ``cache=False`` is for tests: cached loggers would bypass ``structlog.testing.capture_logs``.
    """
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache,
    )
    # Libraries (pymodbus, amqtt, aiohttp) log through stdlib; keep them quiet unless debugging.
    logging.basicConfig(stream=sys.stderr, level=max(LEVELS[level], logging.WARNING))
