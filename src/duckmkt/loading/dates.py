"""Parse the date and time values of one source column.

Recognized without a format: ISO 8601 (with or without a time zone), compact
YYYYMMDD and YYYYMMDDHHMMSS, year-first slashes (2011/12/9), day-first or
month-first day/month/year with '/', '.' or '-', and Chinese dates
(2011年12月9日 13时5分). Day-first against month-first is decided per column
from values with a day above 12; a column with no such value and at least one
ambiguous value raises AmbiguousDateError unless a date format is given. A
given day-first or month-first raises DateOrderError, a subclass, when some
value does not read in that order and every value reads in the other.

Values with a time zone or offset are converted to UTC. Values without one
are kept as written, or read in ``timezone`` and converted to UTC when that
is given. The result is a naive datetime; the report counts conversions.

A date format is written with DuckDB's strptime directives and parsed with
Python's ``datetime.strptime``: ``python_strptime_format`` rewrites the
directives that only DuckDB has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from duckmkt.errors import InputFileError
from duckmkt.i18n import _

DAY_FIRST = "day-first"
MONTH_FIRST = "month-first"
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")

_TIME = r"(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*([AaPp][Mm])?)?"
_ZONE = r"\s*(Z|UTC|GMT|[+-]\d{2}:?\d{2})?"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?" + _ZONE + "$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2}))?$")
_YEAR_FIRST = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})" + _TIME + _ZONE + "$")
_YEAR_LAST = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})" + _TIME + _ZONE + "$")
_CHINESE = re.compile(
    r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
    r"(?:\s*(上午|下午)?\s*(\d{1,2})\s*[:：时]\s*(\d{1,2})\s*(?:[:：分]\s*(?:(\d{1,2})\s*秒?)?)?)?$"
)


# DuckDB strptime directives (DuckDB 2.0.1) that Python's datetime.strptime
# lacks, with the Python directive that reads the same text. Python's %d, %m,
# %H, %I, %M, %S and %j also read a value without its leading zero, and its
# %f reads the three digits of DuckDB's %g as milliseconds.
DUCKDB_ONLY_DIRECTIVES = {
    "%-d": "%d",
    "%-m": "%m",
    "%-H": "%H",
    "%-I": "%I",
    "%-M": "%M",
    "%-S": "%S",
    "%-j": "%j",
    "%g": "%f",
    "%h": "%b",
    "%T": "%H:%M:%S",
}
# DuckDB directives with no Python equivalent, and the directive to use
# instead: Python's %y needs two digits and its %f reads at most six.
UNSUPPORTED_DIRECTIVES = {"%-y": "%y", "%n": "%f"}
DATE_FORMAT_EXAMPLE = "%d/%m/%Y %H:%M"

_DIRECTIVE = re.compile(r"%(?:-.?|.?)", re.DOTALL)


def _directives(date_format: str) -> list[str]:
    """Return the directives of ``date_format`` in order, without the literal %%."""
    return [directive for directive in _DIRECTIVE.findall(date_format) if directive != "%%"]


def python_strptime_format(date_format: str) -> str:
    """Rewrite the DuckDB-only directives of ``date_format`` for Python's datetime.strptime."""
    return _DIRECTIVE.sub(lambda match: DUCKDB_ONLY_DIRECTIVES.get(match.group(0), match.group(0)), date_format)


def date_format_error(date_format: str) -> str | None:
    """Return why ``date_format`` cannot be used to parse dates, or None when it can.

    A format is day-first, month-first, or a DuckDB strptime format with at
    least one directive. DuckDB itself checks each directive, so the formats
    accepted are those of the installed DuckDB, minus UNSUPPORTED_DIRECTIVES.
    """
    if date_format in (DAY_FIRST, MONTH_FIRST):
        return None
    directives = _directives(date_format)
    if not directives:
        return _(
            "Date format {value!r} is not valid because it has no directive (a percent sign and a letter, such as %Y): "
            "give a strptime format such as {example}, or day-first or month-first."
        ).format(value=date_format, example=DATE_FORMAT_EXAMPLE)
    checker = duckdb.connect()
    try:
        for directive in directives:
            if directive in UNSUPPORTED_DIRECTIVES:
                return _("Date format {value!r} uses {directive}, which duckmkt cannot parse; write {replacement} in its place.").format(
                    value=date_format, directive=directive, replacement=UNSUPPORTED_DIRECTIVES[directive]
                )
            try:
                checker.execute("select try_strptime('', ?)", [directive]).fetchall()
            except duckdb.Error:
                return _(
                    "Date format {value!r} is not valid: {directive} is not a strptime directive. "
                    "Give a format such as {example}, or day-first or month-first."
                ).format(value=date_format, directive=directive, example=DATE_FORMAT_EXAMPLE)
    finally:
        checker.close()
    try:
        datetime.strptime("", python_strptime_format(date_format))
    except re.error:
        # Python builds one named regex group per directive, so a directive
        # given twice (%d ... %d) cannot be compiled.
        return _("Date format {value!r} has a directive more than once; give each part of the date once, as in {example}.").format(
            value=date_format, example=DATE_FORMAT_EXAMPLE
        )
    except ValueError:
        pass
    return None


class AmbiguousDateError(InputFileError):
    """A date column reads both day-first and month-first, or mixes the two."""


class DateOrderError(AmbiguousDateError):
    """A date column given as day-first or month-first only reads in the other order."""


@dataclass
class ParsedDates:
    """The parsed value of each distinct text of a column, and what was decided."""

    values: dict[str, datetime | None]
    order: str | None = None
    n_converted_to_utc: int = 0
    formats: set[str] = field(default_factory=set)


def _zone_offset(zone: str | None):
    if not zone:
        return None
    if zone in ("Z", "UTC", "GMT"):
        return dt_timezone.utc
    return datetime.strptime(zone.replace(":", ""), "%z").tzinfo


def _build(year, month, day, hour=None, minute=None, second=None, fraction=None, ampm=None, zone=None) -> datetime | None:
    hour = int(hour or 0)
    if ampm:
        if hour > 12:
            return None
        hour = hour % 12 + (12 if ampm.lower() in ("pm", "下午") else 0)
    year = int(year)
    if year < 100:
        # Two-digit years follow strptime's %y rule: 69-99 are 19xx, 00-68 are 20xx.
        year += 1900 if year >= 69 else 2000
    try:
        value = datetime(
            year, int(month), int(day), hour, int(minute or 0), int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None
    offset = _zone_offset(zone)
    return value.replace(tzinfo=offset) if offset else value


def _parse_iso(text: str) -> datetime | None:
    match = re.search(_ZONE + "$", text)
    zone = match.group(1) if match else None
    base = text[: match.start()] if zone else text
    try:
        value = datetime.fromisoformat(base.strip())
    except ValueError:
        return None
    offset = _zone_offset(zone)
    return value.replace(tzinfo=offset) if offset else value


def _parse_known(text: str, order: str | None) -> datetime | None:
    """Parse ``text`` in one of the recognized forms; day/month/year needs ``order``."""
    if _ISO.match(text):
        return _parse_iso(text)
    if match := _COMPACT.match(text):
        return _build(*match.groups())
    if match := _YEAR_FIRST.match(text):
        year, month, day, hour, minute, second, fraction, ampm, zone = match.groups()
        return _build(year, month, day, hour, minute, second, fraction, ampm, zone)
    if match := _CHINESE.match(text):
        year, month, day, noon, hour, minute, second = match.groups()
        return _build(year, month, day, hour, minute, second, None, noon)
    if (match := _YEAR_LAST.match(text)) and order is not None:
        first, _separator, second_part, year, hour, minute, second, fraction, ampm, zone = match.groups()
        day, month = (first, second_part) if order == DAY_FIRST else (second_part, first)
        return _build(year, month, day, hour, minute, second, fraction, ampm, zone)
    return None


def decide_order(texts: list[str], column: str) -> str | None:
    """Return DAY_FIRST, MONTH_FIRST or None (no day/month/year values) for a column.

    Raises AmbiguousDateError when the values fit both orders, or when some only
    fit one order and others only the other.
    """
    day_first = month_first = ambiguous = 0
    for text in texts:
        match = _YEAR_LAST.match(text)
        if not match:
            continue
        first, second = int(match.group(1)), int(match.group(3))
        if first > 12 >= second:
            day_first += 1
        elif second > 12 >= first:
            month_first += 1
        elif first != second:
            ambiguous += 1
    if day_first and month_first:
        raise AmbiguousDateError(
            _("Column {column} has {day_first} dates that only read day-first and {month_first} that only read "
              "month-first; pass the date format, for example --date-format '%d/%m/%Y'.").format(
                column=column, day_first=day_first, month_first=month_first
            )
        )
    if day_first:
        return DAY_FIRST
    if month_first:
        return MONTH_FIRST
    if ambiguous:
        raise AmbiguousDateError(
            _("Column {column} has {count} dates such as dd/mm/yyyy that read both day-first and month-first; "
              "pass --date-format day-first or --date-format month-first (or a strptime format).").format(
                column=column, count=ambiguous
            )
        )
    return None


def check_given_order(texts: list[str], column: str, order: str) -> None:
    """Raise DateOrderError when ``order`` is the wrong one of day-first and month-first for a column.

    The order is wrong when some value does not read in ``order`` and every
    value reads in the other order: loading would reject those rows and store
    the rest with day and month swapped.
    """
    other = MONTH_FIRST if order == DAY_FIRST else DAY_FIRST
    misfit = next((text for text in texts if _parse_known(text, order) is None), None)
    if misfit is None:
        return
    if any(_parse_known(text, other) is None for text in texts):
        return
    raise DateOrderError(
        _("Column {column} is not {order}: {value!r} is not a valid date read {order}, but every date in the column "
          "reads {other}. Nothing was loaded. Pass --date-format {other} (or set {other} in the mapping) and load again.").format(
            column=column, order=order, value=misfit, other=other
        )
    )


def resolve_timezone(name: str | None):
    """Return the ZoneInfo for ``name``; raise InputFileError for an unknown zone."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InputFileError(
            _("Unknown time zone {zone!r}; use an IANA name such as Europe/London or Asia/Shanghai.").format(zone=name)
        ) from error


def parse_dates(texts: list[str], column: str, *, date_format: str | None = None, timezone: str | None = None) -> ParsedDates:
    """Parse each distinct non-empty text of a date column; unparsable texts map to None."""
    zone = resolve_timezone(timezone)
    order = None
    strptime_format = None
    if date_format in (DAY_FIRST, MONTH_FIRST):
        order = date_format
        check_given_order(texts, column, order)
    elif date_format:
        strptime_format = python_strptime_format(date_format)
    else:
        order = decide_order(texts, column)

    result = ParsedDates(values={}, order=order)
    for text in texts:
        if strptime_format:
            try:
                value = datetime.strptime(text, strptime_format)
            except ValueError:
                value = None
        else:
            value = _parse_known(text, order)
        if value is not None and value.tzinfo is None and zone is not None:
            value = value.replace(tzinfo=zone)
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt_timezone.utc).replace(tzinfo=None)
            result.n_converted_to_utc += 1
        result.values[text] = value
    return result


@dataclass(frozen=True)
class DerivedDate:
    """A date built from a day column and a month column, with the year taken from row order.

    For files that are sorted by date but carry no year (Bank Marketing): the
    year starts at ``first_year`` and goes up by one each time the month
    number falls from one row to the next.
    """

    day: str
    month: str
    first_year: int

    @classmethod
    def from_spec(cls, spec: dict[str, object], mapping_name: str) -> "DerivedDate":
        try:
            return cls(day=str(spec["day"]), month=str(spec["month"]), first_year=int(spec["first_year"]))
        except (KeyError, TypeError, ValueError) as error:
            raise InputFileError(
                _("Mapping {mapping} needs derived_dates entries with day, month and first_year.").format(mapping=mapping_name)
            ) from error

    def build(self, days: list[str | None], months: list[str | None]) -> list[datetime | None]:
        """Return one date per row (None where the day or month is invalid)."""
        year = self.first_year
        previous_month = None
        dates: list[datetime | None] = []
        for day, month in zip(days, months):
            month_number = _month_number(month)
            if month_number is not None and previous_month is not None and month_number < previous_month:
                year += 1
            if month_number is not None:
                previous_month = month_number
            dates.append(_build(year, month_number, day) if month_number and day and day.strip().isdigit() else None)
        return dates


def _month_number(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip().lower()
    if text.isdigit() and 1 <= int(text) <= 12:
        return int(text)
    if text[:3] in MONTHS:
        return MONTHS.index(text[:3]) + 1
    return None
