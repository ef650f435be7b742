"""A device setting as a Balena variable, checked by the device's own configuration loader."""

from __future__ import annotations

from device import config as configuration


def variable_name(key: str) -> str:
    """``inverter.poll_interval_s`` or ``NATTERY_INVERTER_POLL_INTERVAL_S`` → the variable name."""
    if key.upper().startswith(configuration.ENV_PREFIX):
        return key.upper()
    return configuration.ENV_PREFIX + key.replace(".", "_").upper()


def checked_variable(key: str, value: str) -> str:
    """The variable's name once ``value`` passes the device's validation; raises
    :class:`device.config.ConfigError` with the device's own message otherwise."""
    name = variable_name(key)
    configuration.load([configuration.DEFAULT_FILE], environ={name: value})
    return name
