from pathlib import Path

import pytest

from device import config as c


def test_default_file_matches_built_in_defaults() -> None:
    assert c.load([c.DEFAULT_FILE], environ={}) == c.Config()


def test_layers_file_then_environment(tmp_path: Path) -> None:
    installer = tmp_path / "nattery.yaml"
    installer.write_text("inverter:\n  poll_interval_s: 2\n  port: tcp://10.0.0.5:502\n")
    cfg = c.load(
        [c.DEFAULT_FILE, installer],
        environ={"NATTERY_INVERTER_POLL_INTERVAL_S": "3.5", "NATTERY_MQTT_PASSWORD": "0123"},
    )
    assert cfg.inverter.poll_interval_s == 3.5
    assert cfg.inverter.port == "tcp://10.0.0.5:502"
    assert cfg.mqtt.password == "0123"  # a string stays a string, leading zero and all


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"NATTERY_INVERTER_POLL_INTERVAL_S": "fast"}, "inverter.poll_interval_s: got 'fast', expected a finite number"),
        ({"NATTERY_MQTT_PORT": "70000"}, "mqtt.port: got 70000, allowed: 0 to 65535"),
        ({"NATTERY_LOG_LEVEL": "loud"}, "log.level: got 'loud', allowed: debug, info, warning, error"),
        ({"NATTERY_INVERTER_COLOUR": "red"}, "inverter.colour: unknown setting"),
        ({"NATTERY_NOSUCH_KEY": "1"}, "unknown section 'nosuch'"),
        ({"NATTERY_TARIFF_VAT_PCT": ".nan"}, "tariff.vat_pct: got '.nan', expected a finite number"),
        ({"NATTERY_BATTERY_RESERVE_PCT": "-.inf"}, "battery.reserve_pct: got '-.inf', expected a finite number"),
        ({"NATTERY_BRIDGE_WATCHDOG_S": ".inf"}, "bridge.watchdog_s: got '.inf', expected a finite number"),
    ],
)
def test_bad_values_name_key_value_and_allowed(environ: dict[str, str], message: str) -> None:
    with pytest.raises(c.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        c.load([c.DEFAULT_FILE], environ=environ)


def test_secrets_are_never_shown() -> None:
    cfg = c.load([c.DEFAULT_FILE], environ={"NATTERY_MQTT_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(cfg)
    assert c.describe(cfg)["mqtt"]["password"] == "<set>"


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "nattery.yaml"
    bad.write_text("inverter: [unclosed\n")
    with pytest.raises(c.ConfigError, match=str(bad)):
        c.load([c.DEFAULT_FILE, bad], environ={})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 10**400])
def test_replace_refuses_non_finite_numbers(value: float) -> None:
    """The homeowner's settings go through ``replace``: NaN must not slip past the range check."""
    cfg = c.load([c.DEFAULT_FILE], environ={})
    with pytest.raises(c.ConfigError, match=r"tariff.vat_pct: got .*, expected a finite number"):
        cfg.replace(tariff={"vat_pct": value})
