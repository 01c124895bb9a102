"""The closest valid name to a mistyped one, for the "did you mean ...?" part of an error."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest_name(value: str, candidates: Iterable[str]) -> str | None:
    """Return the name in ``candidates`` closest to ``value``, or None when none is close.

    Case is ignored. "Close" is difflib's similarity ratio of at least 0.6,
    the cutoff Click and Typer use to suggest options and commands.
    """
    by_lower = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(value.lower(), list(by_lower), n=1)
    return by_lower[matches[0]] if matches else None
