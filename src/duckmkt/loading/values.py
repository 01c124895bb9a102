"""Convert source text to ids, numbers, integers and flags without loss.

Each converter returns ``(value, None)`` or ``(None, reason)``; the reasons
are the ones stored in ``raw.rejected_rows``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_FLOAT_ID = re.compile(r"^(\d+)\.0+$")
_SCIENTIFIC_ID = re.compile(r"^\d(?:\.\d+)?[eE]\+?\d+$")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")

TRUE_WORDS = ("1", "true", "t", "yes", "y", "treatment", "treated")
FALSE_WORDS = ("0", "false", "f", "no", "n", "control")


def convert_id(text: str) -> tuple[str | None, str | None]:
    """Return the id as a string; '17850.0' becomes '17850' and leading zeros stay.

    An id in scientific notation ('1.785E+04') has lost digits in a
    spreadsheet, so it is rejected rather than rebuilt.
    """
    if match := _FLOAT_ID.match(text):
        return match.group(1), None
    if _SCIENTIFIC_ID.match(text):
        return None, "invalid_id"
    return text, None


def convert_number(text: str, decimal_comma: bool = False) -> tuple[float | None, str | None]:
    """Return the number as a float if the float is exactly the decimal written.

    A value is exact when the shortest decimal that reads back as the same
    float equals the written one ('2.55' is; '0.1000000000000000055' and
    20-digit integers are not).
    """
    if decimal_comma:
        text = text.replace(".", "").replace(",", ".") if "," in text else text
    if not _NUMBER.match(text):
        return None, "invalid_number"
    try:
        written = Decimal(text)
    except InvalidOperation:
        return None, "invalid_number"
    value = float(written)
    if value != value or value in (float("inf"), float("-inf")):
        return None, "invalid_number"
    if Decimal(repr(value)) != written:
        return None, "inexact_number"
    return value, None


def number_text(value: float) -> str:
    """Return the shortest decimal text of ``value`` ('3' for 3.0)."""
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def convert_integer(text: str) -> tuple[int | None, str | None]:
    """Return the integer written in ``text``; '1990.0' is accepted, '1990.5' is not."""
    if match := _FLOAT_ID.match(text):
        text = match.group(1)
    if not _INTEGER.match(text):
        return None, "invalid_number"
    return int(text), None


def convert_flag(text: str) -> tuple[bool | None, str | None]:
    """Return True or False for the usual yes/no, 1/0 and treatment/control words."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True, None
    if word in FALSE_WORDS:
        return False, None
    return None, "invalid_flag"
