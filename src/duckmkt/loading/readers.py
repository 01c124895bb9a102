"""Read a source file into text columns with the line number of every row.

Supported: delimited text (comma, semicolon, tab, pipe or whitespace-aligned
columns), optionally gzip- or zstd-compressed; Parquet; Excel .xlsx. The
format is found from the file's first bytes, not its name. Every value is read
as text. A row with more or fewer fields than the header is kept aside as
malformed, with its line number and text, so the loader can reject it. So is a
line whose quote is never closed: reading goes on with the next line, so the
quote cannot swallow the records after it.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import polars as pl

from duckmkt.errors import InputFileError
from duckmkt.i18n import _
from duckmkt.loading.encodings import decode_bytes
from duckmkt.loading.values import number_text

logger = logging.getLogger(__name__)

LINE_COLUMN = "__source_line"
DELIMITERS = (",", ";", "\t", "|")
WHITESPACE = "whitespace"
# Header plus this many lines decide the delimiter.
SNIFF_LINES = 50
# Longest CSV field accepted, in characters. Python's csv module stops at
# 131,072 by default, which a long product description can exceed. A longer
# field is more likely an unclosed quote, so it is reported as an error.
MAX_FIELD_CHARACTERS = 64 * 1024 * 1024

# Reject reason for a line whose opening quote is never closed.
UNCLOSED_QUOTE = "unclosed_quote"
# Line numbers listed in a warning before the rest are only counted.
MAX_LINES_NAMED = 10

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZIP_MAGIC = b"PK\x03\x04"
PARQUET_MAGIC = b"PAR1"


@dataclass
class MalformedRow:
    """A source row that does not fit the header."""

    line: int
    reason: str
    text: str


@dataclass
class SourceTable:
    """The rows of one file as text, plus what was decided while reading it."""

    columns: list[str]
    frame: pl.DataFrame
    malformed: list[MalformedRow] = field(default_factory=list)
    file_format: str = "csv"
    encoding: str | None = None
    encoding_confidence: float | None = None
    delimiter: str | None = None
    warnings: list[str] = field(default_factory=list)
    # Header names that occur more than once; the copies were renamed <name>_2, ...
    duplicate_columns: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return self.frame.height + len(self.malformed)


def _decompress(data: bytes, file_name: str) -> tuple[bytes, str | None]:
    if data.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(data), "gzip"
        except (EOFError, OSError, zlib.error) as error:
            raise InputFileError(
                _("{file} is a damaged or truncated gzip file ({error}); download or export it again.").format(
                    file=file_name, error=error
                )
            ) from error
    if data.startswith(ZSTD_MAGIC):
        import zstandard

        decompressor = zstandard.ZstdDecompressor().decompressobj()
        try:
            text = decompressor.decompress(data)
        except zstandard.ZstdError as error:
            raise InputFileError(
                _("{file} is a damaged zstd file ({error}); download or export it again.").format(file=file_name, error=error)
            ) from error
        if not decompressor.eof:
            raise InputFileError(
                _("{file} is a truncated zstd file: the stream ends early; download or export it again.").format(file=file_name)
            )
        return text, "zstd"
    return data, None


def _unique_names(names: list[str]) -> list[str]:
    """Strip header names and make them unique; an empty name becomes column_<n>."""
    result: list[str] = []
    for index, name in enumerate(names, start=1):
        name = name.strip().lstrip("\ufeff").strip() or f"column_{index}"
        candidate, suffix = name, 2
        while candidate in result:
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        result.append(candidate)
    return result


def _duplicate_names(names: list[str]) -> list[str]:
    """Return the header names that ``_unique_names`` had to rename, once each."""
    stripped = [name.strip().lstrip("\ufeff").strip() for name in names if name and name.strip()]
    return sorted({name for name in stripped if stripped.count(name) > 1})


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    if delimiter == WHITESPACE:
        return [len(line.split()) for line in lines]
    _allow_long_fields()
    try:
        return [len(row) for row in csv.reader(lines, delimiter=delimiter)]
    except csv.Error:
        # A line this delimiter cannot split (a NUL byte, say) rules it out.
        return []


def _allow_long_fields() -> None:
    # The limit is process-wide; it is only ever raised, never lowered.
    if csv.field_size_limit() < MAX_FIELD_CHARACTERS:
        csv.field_size_limit(MAX_FIELD_CHARACTERS)


def sniff_delimiter(lines: list[str]) -> str:
    """Return the delimiter that splits the header and most rows into the same number of fields (two or more)."""
    best, best_fields = ",", 1
    for delimiter in DELIMITERS + (WHITESPACE,):
        counts = _field_counts(lines, delimiter)
        if not counts or counts[0] < 2:
            continue
        consistent = sum(1 for count in counts if count == counts[0]) / len(counts)
        if consistent >= 0.8 and counts[0] > best_fields:
            best, best_fields = delimiter, counts[0]
        if best != "," and delimiter == WHITESPACE:
            break
    return best


def _frame(columns: list[str], rows: list[list[str]], lines: list[int]) -> pl.DataFrame:
    data = {name: list(values) for name, values in zip(columns, zip(*rows))} if rows else {name: [] for name in columns}
    frame = pl.DataFrame(data, schema={name: pl.String for name in columns})
    return frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64))


def read_delimited(text: str, file_name: str, delimiter: str | None = None) -> SourceTable:
    """Split decoded text into a header and rows; line numbers count from 1 at the header."""
    lines = text.splitlines()
    first = next((index for index, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InputFileError(
            _("{file} is empty: it has no header line. Check that the export finished.").format(file=file_name)
        )
    if delimiter is None:
        sample = [line for line in lines[first : first + SNIFF_LINES + 1] if line.strip()]
        delimiter = sniff_delimiter(sample)
    elif delimiter in ("\\t", "tab"):
        delimiter = "\t"

    if delimiter == WHITESPACE:
        records = ((number, line.split(), None) for number, line in enumerate(lines, start=1) if line.strip())
    else:
        records = _csv_records(text, delimiter, file_name)

    iter_records = iter(records)
    first_record = next(iter_records, None)
    if first_record is None:
        # Text such as a lone quote: not blank, yet no record has a field.
        raise InputFileError(
            _("{file} has no header line: no line holds a column name once quotes are read. Check that the file is a complete CSV export.").format(
                file=file_name
            )
        )
    _header_line, header, _reason = first_record
    columns = _unique_names(header)
    rows: list[list[str]] = []
    row_lines: list[int] = []
    malformed: list[MalformedRow] = []
    for line_number, fields, reject_reason in iter_records:
        if reject_reason is not None:
            malformed.append(MalformedRow(line_number, reject_reason, fields[0]))
        elif len(fields) == len(columns):
            rows.append(fields)
            row_lines.append(line_number)
        else:
            reason = "too_many_fields" if len(fields) > len(columns) else "too_few_fields"
            joiner = " " if delimiter == WHITESPACE else delimiter
            malformed.append(MalformedRow(line_number, reason, joiner.join(fields)))
    table = SourceTable(
        columns, _frame(columns, rows, row_lines), malformed, delimiter=delimiter, duplicate_columns=_duplicate_names(header)
    )
    unclosed = [row.line for row in malformed if row.reason == UNCLOSED_QUOTE]
    if unclosed:
        table.warnings.append(_unclosed_quote_warning(file_name, unclosed))
    return table


def _unclosed_quote_warning(file_name: str, lines: list[int]) -> str:
    named_lines = ", ".join(str(line) for line in lines[:MAX_LINES_NAMED])
    if len(lines) > MAX_LINES_NAMED:
        named_lines = _("{lines} and {count} more").format(lines=named_lines, count=len(lines) - MAX_LINES_NAMED)
    return _(
        "{file}: line(s) {lines} open a quote that is never closed, so the lines after each ran into one field. "
        "Each such line was rejected as unclosed_quote, and reading went on with the next line. "
        "Close the quote or remove it, then load the file again to load those lines."
    ).format(file=file_name, lines=named_lines)


class _LineFeed:
    """The physical lines of a text for csv.reader, with the lines of the current record and a way to take lines back.

    Lines end where the csv module ends them with newline="": at LF, CR or CRLF.
    """

    def __init__(self, text: str) -> None:
        self._source = iter(io.StringIO(text, newline=""))
        self._taken_back: list[str] = []  # the next line to read is last
        self.next_line = 1
        self.record_lines: list[str] = []

    def lines(self):
        """Yield the lines taken back first, then the rest of the text. A generator costs less per line than __next__."""
        for line in self._source:
            while self._taken_back:
                yield self._take(self._taken_back.pop())
            yield self._take(line)
        while self._taken_back:
            yield self._take(self._taken_back.pop())

    def _take(self, line: str) -> str:
        self.record_lines.append(line)
        self.next_line += 1
        return line

    def start_record(self) -> int:
        """Forget the lines read so far and return the number of the next line."""
        self.record_lines = []
        return self.next_line

    def take_back(self, lines: list[str]) -> None:
        """Make ``lines`` the next lines to read, in order."""
        self._taken_back.extend(reversed(lines))
        self.next_line -= len(lines)


def _csv_records(text: str, delimiter: str, file_name: str):
    """Yield (first line number, fields, reject reason) for each non-blank CSV record.

    Quoted fields may span lines. When an unclosed quote ran a record on into
    the following lines (see ``_swallows_records``), only the record's first
    physical line is yielded, with the reason ``unclosed_quote``. Reading
    starts again on the next line, so each swallowed line is read as its own
    record.
    """
    _allow_long_fields()
    feed = _LineFeed(text)
    n_columns: int | None = None
    while True:
        # csv.reader reads no further than the end of the record it returns,
        # so a new reader can start on lines taken back into the feed.
        reader = csv.reader(feed.lines(), delimiter=delimiter)
        while True:
            start = feed.start_record()
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise InputFileError(
                    _("{file} cannot be read as CSV after line {line}: {error}; check for an unclosed quote or a NUL byte.").format(
                        file=file_name, line=feed.next_line - 1, error=error
                    )
                ) from error
            record_lines = feed.record_lines
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if n_columns is None:
                n_columns = len(fields)
            elif len(record_lines) > 1 and _swallows_records(record_lines, fields, delimiter, n_columns):
                yield start, [record_lines[0].rstrip("\r\n")], UNCLOSED_QUOTE
                feed.take_back(record_lines[1:])
                break
            yield start, fields, None


def _swallows_records(record_lines: list[str], fields: list[str], delimiter: str, n_columns: int) -> bool:
    """Return whether a record spanning ``record_lines`` is an unclosed quote that ran on into later records.

    Two signs must both hold, so a well-formed quoted field with line breaks
    (even one whose lines contain delimiters) is kept:

    - a continuation line is a complete record by itself: it has the header's
      number of fields and no quote character in any of them, and
    - the record is not well-formed: its field count differs from the
      header's, or a strict parse fails. A strict parse fails when the quote
      that ended the field is followed by text, because it really opened a
      later field, or when the file ends inside the quote.

    NOTE: some unclosed quotes are missed, and the record is then loaded or
    rejected as one row. That happens when no swallowed line is a complete
    record by itself (each contains a quote character, say), or when the header
    has one column. It also happens when the quote that ends the field is
    followed by a delimiter and the field count still matches.
    """
    if n_columns < 2:
        return False
    if not any(_is_complete_record(line, delimiter, n_columns) for line in record_lines[1:]):
        return False
    if len(fields) != n_columns:
        return True
    try:
        list(csv.reader(record_lines, delimiter=delimiter, strict=True))
    except csv.Error:
        return True
    return False


def _is_complete_record(line: str, delimiter: str, n_columns: int) -> bool:
    try:
        records = list(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return len(records) == 1 and len(records[0]) == n_columns and not any('"' in value for value in records[0])


def _cell_text(value: object) -> str | None:
    """Return an Excel cell as text: numbers in shortest form, dates in ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def read_excel(path: Path, sheet: str | None = None) -> SourceTable:
    """Read the first (or the named) sheet of an .xlsx file; line numbers are the sheet's row numbers."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises several unrelated types for a damaged file.
        raise InputFileError(
            _("Could not read {file} as an Excel workbook: {error}").format(file=path.name, error=error)
        ) from error
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise InputFileError(
                _("{file} has no sheet {sheet!r}; its sheets are: {sheets}.").format(
                    file=path.name, sheet=sheet, sheets=", ".join(workbook.sheetnames)
                )
            )
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        records = [
            (number, [_cell_text(value) for value in row])
            for number, row in enumerate(worksheet.iter_rows(values_only=True), start=1)
            if any(value is not None and str(value).strip() for value in row)
        ]
    finally:
        workbook.close()
    if not records:
        raise InputFileError(_("{file} is empty: its sheet has no header row.").format(file=path.name))

    _header_line, header = records[0]
    while header and header[-1] is None:
        header = header[:-1]
    columns = _unique_names([value or "" for value in header])
    rows, lines, malformed = [], [], []
    for number, values in records[1:]:
        extra = [value for value in values[len(columns) :] if value is not None]
        if extra:
            malformed.append(MalformedRow(number, "too_many_fields", "\t".join(value or "" for value in values)))
            continue
        values = (values + [None] * len(columns))[: len(columns)]
        rows.append(values)
        lines.append(number)
    return SourceTable(
        columns, _frame(columns, rows, lines), malformed, file_format="xlsx",
        duplicate_columns=_duplicate_names([value or "" for value in header]),
    )


def read_parquet(path: Path) -> SourceTable:
    """Read a Parquet file with every column cast to text; line numbers are row numbers from 1."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputFileError(_("Could not read {file} as Parquet: {error}").format(file=path.name, error=error)) from error

    columns = _unique_names(table.column_names)
    arrays = {}
    for name, column in zip(columns, table.columns):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            # Keep the offset so the date parser converts the value to UTC and counts it.
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S%z")
        elif pa.types.is_floating(column.type):
            column = pa.array([None if value is None else number_text(value) for value in column.to_pylist()], pa.string())
        arrays[name] = column.cast(pa.string())
    frame = pl.from_arrow(pa.table(arrays)) if columns else pl.DataFrame()
    frame = frame.with_columns(pl.Series(LINE_COLUMN, range(1, table.num_rows + 1), dtype=pl.Int64))
    return SourceTable(columns, frame, file_format="parquet", duplicate_columns=_duplicate_names(table.column_names))


def read_source(path: Path, *, encoding: str | None = None, delimiter: str | None = None, sheet: str | None = None) -> SourceTable:
    """Read any supported file; the format comes from its first bytes."""
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(PARQUET_MAGIC):
        return read_parquet(path)
    if head.startswith(ZIP_MAGIC):
        return read_excel(path, sheet)

    raw = path.read_bytes()
    if not raw:
        raise InputFileError(
            _("{file} is empty: it has no header line. Check that the export finished.").format(file=path.name)
        )
    data, compression = _decompress(raw, path.name)
    decoded = decode_bytes(data, path.name, encoding)
    table = read_delimited(decoded.text, path.name, delimiter)
    table.file_format = (
        _("delimited text ({compression})").format(compression=compression) if compression else _("delimited text")
    )
    table.encoding = decoded.encoding
    table.encoding_confidence = decoded.confidence
    table.warnings += decoded.warnings
    logger.info(
        "%s: %s, delimiter %r, %d rows, %d malformed", path.name, table.file_format, table.delimiter,
        table.frame.height, len(table.malformed),
    )
    return table
