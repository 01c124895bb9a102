"""State and helpers shared by the command modules."""

from __future__ import annotations

from datetime import date
from typing import Optional

from duckmkt.errors import DuckmktError
from duckmkt.i18n import _


class State:
    """Options given before the command name, shared by every command."""

    debug = False


def parse_date(value: Optional[str], option: str) -> Optional[date]:
    """Parse a YYYY-MM-DD option value, or raise naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as error:
        raise DuckmktError(
            _("{option} {value!r} is not a date; write it as YYYY-MM-DD.").format(option=option, value=value)
        ) from error
