from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from common.utc import format_utc, parse_utc


def test_one_format_with_milliseconds() -> None:
    assert format_utc(1_719_835_200.0) == "2024-07-01T12:00:00.000Z"
    assert format_utc(1_719_835_200.1234) == "2024-07-01T12:00:00.123Z"
    assert format_utc().endswith("Z") and len(format_utc()) == 24


def test_parses_what_it_writes_and_the_older_whole_second_form() -> None:
    assert parse_utc(format_utc(1_719_835_200.123)) == 1_719_835_200.123
    assert parse_utc("2024-07-01T12:00:00Z") == 1_719_835_200.0  # migration records, retained messages
    assert parse_utc("2024-07-01T14:00:00+02:00") == 1_719_835_200.0


def test_a_time_without_offset_needs_a_zone() -> None:
    with pytest.raises(ValueError, match=r"'2024-07-01T12:00:00' has no UTC offset"):
        parse_utc("2024-07-01T12:00:00")
    assert parse_utc("2024-07-01T14:00:00", naive=ZoneInfo("Europe/Berlin")) == 1_719_835_200.0


@pytest.mark.parametrize("text", ["yesterday", "", "2024-13-01T00:00:00Z"])
def test_garbage_is_refused_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=f"{text!r} is not an ISO-8601 time"):
        parse_utc(text)
