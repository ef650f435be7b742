"""Structured logging: one processor chain everywhere, JSON off a TTY, console on one.

Call :func:`configure` once per process (the CLI does). Library code only does
``log = structlog.get_logger(__name__)`` and logs events with keys, never formatted strings.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, MutableMapping
from types import TracebackType
from typing import Any

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
HANDLER_NAME = "structlog"  # the root handler configure() installs (and replaces on a second call)
SECRET_KEYS = frozenset({"password", "token", "secret", "credential", "authorization", "api_key"})


def redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask any value whose key looks like a secret, wherever it was logged from."""
    for key in event_dict:
        if any(word in key.lower() for word in SECRET_KEYS):
            event_dict[key] = "<redacted>"
    return event_dict


def configure(level: str = "info", fmt: str = "auto", *, cache: bool = True) -> None:
    """Configure structlog, and route stdlib logging (pymodbus, aiohttp, asyncio, amqtt, Python
    warnings) through the same processors and renderer, so a process writes one format only.

    Libraries log at ``warning`` and above whatever ``level`` says (their debug output would
    drown ours). ``cache=False`` is for tests: cached loggers would bypass
    ``structlog.testing.capture_logs``.
    """
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(LEVELS[level], logging.WARNING))
    logging.captureWarnings(True)
    sys.excepthook = log_uncaught
    threading.excepthook = lambda args: log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def log_uncaught(exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> None:
    """A crash's traceback as one log event (``sys.excepthook``), not as loose lines; Ctrl-C
    stays quiet as Python has it."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc or exc_type(), tb)
        return
    structlog.get_logger(__name__).critical("uncaught exception", exc_info=(exc_type, exc, tb))


@contextlib.contextmanager
def native_output_logged(event: str, fd: int = 1) -> Iterator[None]:
    """Send what native code writes to ``fd`` while the block runs to one debug event instead.

    For C/C++ libraries that print banners past Python's logging (HiGHS prints its licence
    banner on stdout when a process makes its first solver). Only for short blocks on one
    thread: anything else written to ``fd`` meanwhile ends up in the same event.
    """
    stream = {1: sys.stdout, 2: sys.stderr}.get(fd)
    if stream is not None:
        stream.flush()
    _flush_c_stdio()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            _flush_c_stdio()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
    if text:
        structlog.get_logger(__name__).debug(event, output=text)


def _flush_c_stdio() -> None:
    libc = ctypes.CDLL(None)
    libc.fflush(None)
