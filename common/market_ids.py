"""German energy-market identities: market location, metering location, market partner IDs.

Pure checks shared by the device (its configuration) and the aggregator (files it receives);
each raises :class:`IdError` with one line saying which character is wrong and what it should be.

- **MaLo-ID** (Marktlokations-ID): 11 digits, the last one a check digit (BDEW, "Anwendungshilfe
  Marktlokations-ID"): over the first ten digits, a = sum of the digits in odd positions
  (1, 3, 5, 7, 9), b = sum of the digits in even positions, doubled; the check digit is
  ``(10 - (a + b) mod 10) mod 10``. The first digit is not 0.
- **MeLo-ID** (Messlokations-ID, Zählpunktbezeichnung): 33 characters: country code ``DE``, the
  6-digit grid operator number, the 5-digit postcode, and a 20-character alphanumeric meter
  point number (capital letters and digits). It has no check digit.
- **Market partner ID**: 13 digits, the last a check digit. BDEW codes begin with 99 and carry
  the MaLo-ID's check digit over their first twelve digits (weights 1, 2, 1, 2 ... from the
  left): every real BDEW code we have seen has it (``9905048000007``, ``9985046000001`` in the
  real MSCONS files of docs/edi.md, ``9904590000002``, ``9903756000004`` in public EDIFACT), and
  none the GS1 digit. GS1 GLNs (any other 13-digit code) carry the GS1 mod-10 check digit
  (weights 1, 3, 1, 3 ... from the left; check = ``(10 - sum mod 10) mod 10``); so do DVGW codes
  (begin with 98) here, for want of a real one to check against. The code list that
  qualifies it differs by segment: NAD (DE 3055) uses 9 = GS1, 293 = BDEW, 332 = DVGW; UNB
  (DE 0007) uses 14 = GS1, 500 = BDEW, 502 = DVGW (EDI@Energy MIGs, "Allgemeine Festlegungen").
"""

from __future__ import annotations

from collections.abc import Callable

#: NAD code list qualifier (DE 3055) → UNB partner identification code qualifier (DE 0007).
UNB_QUALIFIER = {"9": "14", "293": "500", "332": "502"}
#: NAD code list qualifier → the prefix its codes begin with (None: any GLN).
_PREFIX = {"9": None, "293": "99", "332": "98"}


class IdError(ValueError):
    """An identity that is malformed; the message says where and what is allowed."""


def _nth(position: int) -> str:
    if position % 100 in (11, 12, 13):
        return f"{position}th"
    return f"{position}" + {1: "st", 2: "nd", 3: "rd"}.get(position % 10, "th")


def bdew_check_digit(digits: str) -> int:
    """The BDEW check digit (weights 1, 2, 1, 2 ... from the left) of a MaLo-ID's first ten
    digits or a BDEW code number's first twelve."""
    odd = sum(int(d) for d in digits[0::2])
    even = sum(int(d) for d in digits[1::2]) * 2
    return (10 - (odd + even) % 10) % 10


def gs1_check_digit(first_twelve: str) -> int:
    """The GS1 mod-10 check digit of a 13-digit code's first twelve digits."""
    total = sum(int(d) * (3 if n % 2 else 1) for n, d in enumerate(first_twelve))
    return (10 - total % 10) % 10


def partner_check_digit(first_twelve: str, qualifier: str) -> int:
    """The check digit a market partner ID of NAD code list ``qualifier`` ends with."""
    return bdew_check_digit(first_twelve) if qualifier == "293" else gs1_check_digit(first_twelve)


def _digits(value: str, length: int, what: str) -> None:
    if len(value) != length:
        raise IdError(f"{value!r}: {len(value)} characters, a {what} has {length} digits")
    for n, char in enumerate(value, 1):
        if not _digit(char):
            raise IdError(f"{value!r}: the {_nth(n)} character {char!r} is not a digit ({what}: {length} digits)")


def check_malo(value: str) -> str:
    """``value`` if it is a valid MaLo-ID, else :class:`IdError`."""
    _digits(value, 11, "MaLo-ID")
    if value[0] == "0":
        raise IdError(f"{value!r}: the 1st digit is 0, a MaLo-ID begins with 1-9")
    expected = bdew_check_digit(value[:10])
    if int(value[10]) != expected:
        raise IdError(f"{value!r}: the check digit (11th) is {value[10]}, it should be {expected}")
    return value


def _digit(char: str) -> bool:
    return char.isascii() and char.isdigit()


def _alnum(char: str) -> bool:
    return char.isascii() and (char.isdigit() or char.isupper())


#: The MeLo-ID's parts: first and last character (1-based), name, test per character, rule.
_MELO_PARTS: tuple[tuple[int, int, str, Callable[[int, str], bool], str], ...] = (
    (1, 2, "country code", lambda n, c: c == "DE"[n - 1], "DE"),
    (3, 8, "grid operator number", lambda n, c: _digit(c), "6 digits"),
    (9, 13, "postcode", lambda n, c: _digit(c), "5 digits"),
    (14, 33, "meter point number", lambda n, c: _alnum(c), "20 capital letters or digits"),
)


def check_melo(value: str) -> str:
    """``value`` if it is a well-formed MeLo-ID (33 characters), else :class:`IdError`."""
    if len(value) != 33:
        raise IdError(f"{value!r}: {len(value)} characters, a MeLo-ID has 33 "
                      "(DE + 6-digit grid operator + 5-digit postcode + 20 alphanumeric)")
    for first, last, part, ok, rule in _MELO_PARTS:
        for n in range(first, last + 1):
            if not ok(n - first + 1, value[n - 1]):
                raise IdError(f"{value!r}: the {_nth(n)} character {value[n - 1]!r} is wrong: "
                              f"characters {first}-{last} are the {part}, {rule}")
    return value


def check_partner(value: str, qualifier: str) -> str:
    """``value`` if it is a valid 13-digit market partner ID for the NAD code list ``qualifier``."""
    if qualifier not in _PREFIX:
        raise IdError(f"code list qualifier {qualifier!r}: allowed 9 (GS1), 293 (BDEW), 332 (DVGW)")
    _digits(value, 13, "market partner ID")
    prefix = _PREFIX[qualifier]
    if prefix is not None and not value.startswith(prefix):
        issuer = {"293": "BDEW", "332": "DVGW"}[qualifier]
        raise IdError(f"{value!r}: {issuer} codes (qualifier {qualifier}) begin with {prefix}")
    expected = partner_check_digit(value[:12], qualifier)
    if int(value[12]) != expected:
        raise IdError(f"{value!r}: the check digit (13th) is {value[12]}, it should be {expected}")
    return value
