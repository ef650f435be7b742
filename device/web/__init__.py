"""The local web page: homeowner overview, prices and plan, savings, settings, installer view.

``create_app(cfg, deps)`` builds the aiohttp application; :mod:`device.web.deps` says what it needs.
"""

from device.web.app import create_app
from device.web.deps import CommandResult, CommandSender, HealthSource, TelemetrySource, WebDeps

__all__ = ["CommandResult", "CommandSender", "HealthSource", "TelemetrySource", "WebDeps", "create_app"]
