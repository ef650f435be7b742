"""Market identities: the BDEW MaLo check digit, the GS1 mod-10 check digit, the MeLo layout,
and the one-line errors of the configuration that uses them."""

from __future__ import annotations

import pytest

from common import market_ids as ids
from device import config as configuration


@pytest.mark.parametrize("malo", ["51238696781", "41373559241"])
def test_published_malo_examples_are_valid(malo: str) -> None:
    assert ids.check_malo(malo) == malo


@pytest.mark.parametrize("gln", ["4012345000009", "9800000000007"])
def test_gs1_check_digit_of_known_codes(gln: str) -> None:
    assert ids.gs1_check_digit(gln[:12]) == int(gln[12])


# Real BDEW codes: the sender and receiver of the real MSCONS files named in docs/edi.md, and two
# of public EDIFACT examples; each would be refused with the GS1 check digit (9, 3, 0, 7).
@pytest.mark.parametrize("code", ["9905048000007", "9985046000001", "9904590000002", "9903756000004"])
def test_real_bdew_codes_carry_the_malo_check_digit(code: str) -> None:
    assert ids.bdew_check_digit(code[:12]) == int(code[12])
    assert ids.check_partner(code, "293") == code
    assert ids.gs1_check_digit(code[:12]) != int(code[12])


def test_every_wrong_malo_check_digit_is_named_with_the_right_one() -> None:
    for wrong in "023456789":
        with pytest.raises(ids.IdError, match=rf"the check digit \(11th\) is {wrong}, it should be 1"):
            ids.check_malo("5123869678" + wrong)


@pytest.mark.parametrize(("value", "message"), [
    ("5123869678", "10 characters, a MaLo-ID has 11 digits"),
    ("5123x696781", "the 5th character 'x' is not a digit"),
    ("01238696781", "the 1st digit is 0"),
])
def test_malo_refusals(value: str, message: str) -> None:
    with pytest.raises(ids.IdError, match=message):
        ids.check_malo(value)


@pytest.mark.parametrize(("value", "message"), [
    ("AT0001234567890000000000000000001", "the 1st character 'A' is wrong: characters 1-2 are the country code, DE"),
    ("DE00012A4567890000000000000000001", "the 8th character 'A' is wrong: characters 3-8 are the grid operator"),
    ("DE0001234567890000000000000000a01", "the 31st character 'a' is wrong: characters 14-33 are the meter point"),
    ("DE000123456789", "14 characters, a MeLo-ID has 33"),
])
def test_melo_refusals(value: str, message: str) -> None:
    with pytest.raises(ids.IdError, match=message):
        ids.check_melo(value)


def test_partner_ids_check_digit_prefix_and_qualifier() -> None:
    assert ids.check_partner("4012345000009", "9") == "4012345000009"
    with pytest.raises(ids.IdError, match=r"the check digit \(13th\) is 4, it should be 3"):
        ids.check_partner("9900000000004", "293")
    with pytest.raises(ids.IdError, match=r"the check digit \(13th\) is 3, it should be 9"):
        ids.check_partner("4012345000003", "9")
    with pytest.raises(ids.IdError, match=r"BDEW codes .qualifier 293. begin with 99"):
        ids.check_partner("4012345000009", "293")
    with pytest.raises(ids.IdError, match=r"DVGW codes .qualifier 332. begin with 98"):
        ids.check_partner("9900000000003", "332")
    with pytest.raises(ids.IdError, match=r"allowed 9 .GS1., 293 .BDEW., 332 .DVGW."):
        ids.check_partner("9900000000003", "500")


def market(**values: str) -> dict[str, dict[str, str]]:
    good = {"malo_id": "51238696781", "melo_id": "DE0001234567890000000000000000001",
            "sender_id": "9900000000003", "receiver_id": "9800000000007", "receiver_qualifier": "332"}
    return {"market": {**good, **values}}


def test_configuration_accepts_valid_identities_and_none() -> None:
    assert not configuration.load(files=[configuration.DEFAULT_FILE], environ={}).market.configured
    cfg = configuration.load(files=[configuration.DEFAULT_FILE], environ={}, overrides=market())
    assert cfg.market.configured and cfg.market.melo_id == "DE0001234567890000000000000000001"


@pytest.mark.parametrize(("values", "message"), [
    ({"malo_id": "51238696782"}, "market.malo_id: '51238696782': the check digit (11th) is 2, it should be 1"),
    ({"sender_id": "9900000000005"}, "market.sender_id: '9900000000005': the check digit (13th) is 5, it should be 3"),
    ({"receiver_qualifier": "293"}, "market.receiver_id: '9800000000007': BDEW codes (qualifier 293) begin with 99"),
    ({"melo_id": ""}, "market.melo_id: empty; set all of malo_id, melo_id, sender_id, receiver_id or none"),
    ({"sender_qualifier": "500"}, "market.sender_qualifier: got '500', allowed: 9, 293, 332"),
])
def test_configuration_refuses_identities_in_one_line(values: dict[str, str], message: str) -> None:
    with pytest.raises(configuration.ConfigError) as caught:
        configuration.load(files=[configuration.DEFAULT_FILE], environ={}, overrides=market(**values))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_environment_sets_identities_as_text() -> None:
    env = {"NATTERY_MARKET_MALO_ID": "41373559241", "NATTERY_MARKET_MELO_ID": "DE0001234567890000000000000000001",
           "NATTERY_MARKET_SENDER_ID": "9900000000003", "NATTERY_MARKET_RECEIVER_ID": "9900000000003"}
    assert configuration.load(files=[configuration.DEFAULT_FILE], environ=env).market.malo_id == "41373559241"
