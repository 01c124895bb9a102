"""Read a source file into text columns with the line number of every row.

Supported: delimited text (comma, semicolon, tab, pipe or whitespace-aligned
columns), optionally gzip- or zstd-compressed; Parquet; Excel .xlsx. The
format is found from the file's first bytes, not its name. Every value is read
as text. A row with more or fewer fields than the header is kept aside as
malformed, with its line number and text, so the loader can reject it.
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
        records = ((number, line.split()) for number, line in enumerate(lines, start=1) if line.strip())
    else:
        records = _csv_records(text, delimiter, file_name)

    header_line, header = next(iter_records := iter(records))
    columns = _unique_names(header)
    rows: list[list[str]] = []
    row_lines: list[int] = []
    malformed: list[MalformedRow] = []
    for line_number, fields in iter_records:
        if len(fields) == len(columns):
            rows.append(fields)
            row_lines.append(line_number)
        else:
            reason = "too_many_fields" if len(fields) > len(columns) else "too_few_fields"
            joiner = " " if delimiter == WHITESPACE else delimiter
            malformed.append(MalformedRow(line_number, reason, joiner.join(fields)))
    return SourceTable(
        columns, _frame(columns, rows, row_lines), malformed, delimiter=delimiter, duplicate_columns=_duplicate_names(header)
    )


def _csv_records(text: str, delimiter: str, file_name: str):
    """Yield (first line number, fields) for each non-blank CSV record; quoted fields may span lines."""
    _allow_long_fields()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    previous_end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InputFileError(
                _("{file} cannot be read as CSV after line {line}: {error}; check for an unclosed quote or a NUL byte.").format(
                    file=file_name, line=reader.line_num, error=error
                )
            ) from error
        start = previous_end + 1
        previous_end = reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        yield start, fields


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
