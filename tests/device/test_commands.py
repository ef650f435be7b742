"""Command messages: strict JSON, a string id, neither retained nor stale."""

from __future__ import annotations

import json

import pytest

from device.commands import MAX_AGE_S, BadCommand, caller_id, loads, number, parse_command

NOW = 1_800_000_000.0


def test_parse_command_requires_an_object_with_id() -> None:
    assert parse_command(b'{"id": "a", "power_w": 5}', now=NOW) == {"id": "a", "power_w": 5}
    with pytest.raises(BadCommand, match="'id'"):
        parse_command(b'{"id": 5}', now=NOW)


@pytest.mark.parametrize("payload, error", [
    (b'{"id": "a", "hold_s": NaN}', "NaN is not a JSON number"),
    (b'{"id": "a", "power_w": Infinity}', "Infinity is not a JSON number"),
    (b'{"id": "a", "power_w": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"id": "a", "power_w": 1e999}', "1e999 is out of range"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"id": "\xff"}', "not valid JSON"),
])
def test_non_finite_numbers_and_deep_nesting_are_refused(payload: bytes, error: str) -> None:
    with pytest.raises(BadCommand, match=error):
        parse_command(payload, now=NOW)


def test_retained_commands_are_refused_with_the_reason() -> None:
    with pytest.raises(BadCommand, match="retained commands are refused"):
        parse_command(b'{"id": "r1"}', now=NOW, retained=True)


@pytest.mark.parametrize("ts", [NOW - MAX_AGE_S - 1, NOW + MAX_AGE_S + 1, "2020-01-01T00:00:00Z"])
def test_stale_commands_are_refused(ts: object) -> None:
    with pytest.raises(BadCommand, match=r"s (old|ahead) by the receiver's clock; commands more than 10 s old or ahead are refused"):
        parse_command(json.dumps({"id": "s", "ts": ts}).encode(), now=NOW)


def test_a_fresh_timestamp_is_accepted_and_removed() -> None:
    assert parse_command(json.dumps({"id": "f", "ts": NOW - 2}).encode(), now=NOW) == {"id": "f"}
    for bad in (b"true", b"1" + b"0" * 400):  # the integer beyond any float raised OverflowError
        with pytest.raises(BadCommand, match="ts must be epoch seconds"):
            parse_command(b'{"id": "f", "ts": ' + bad + b"}", now=NOW)


def test_caller_id_is_echoed_when_there_is_one() -> None:
    assert caller_id(b'{"id": "x", "hold_s": NaN}') == "x"
    assert caller_id(b'{"id": 5}') is None
    assert caller_id(b"nonsense") is None


@pytest.mark.parametrize("value", [True, False, "5", None, float("nan"), float("inf"), 10**400])
def test_number_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(BadCommand, match="power_w must be a finite number"):
        number(value, "power_w")


def test_loads_gives_value_errors_only() -> None:
    assert loads(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(ValueError):
        loads(b"{" * 50_000)
