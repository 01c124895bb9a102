"""Load a source file into the raw tables, once, and report what happened.

One load reads the file once and stores each mapped record kind in its raw
table in its own transaction, with the rejected rows and a load-log entry.
A kind already loaded from a file with the same sha256 is skipped, unless the
load replaces it: then the earlier load's rows, rejected rows and log entry are
deleted in the transaction that stores the new rows. Rows that an earlier load
of another file already added (a newer extract that repeats older rows) are
counted and not added again: a row is new when the file contains more copies
of it than the table does. Every part of a file is converted before any part
is stored, so a date or mapping error stops the load with nothing stored.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from duckmkt.errors import InputFileError, MappingError
from duckmkt.i18n import _
from duckmkt.loading.contracts import CONTRACTS
from duckmkt.loading.convert import ATTRIBUTES, Converted, ReadOptions, convert_table
from duckmkt.loading.dates import date_format_error
from duckmkt.loading.mapping import Mapping, check_mapping_columns, guess_mapping, preset_names, read_mappings
from duckmkt.loading.readers import LINE_COLUMN, SourceTable, read_source
from duckmkt.loading.report import LoadReport
from duckmkt.sql_views import quote_identifier

logger = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _already_loaded(con: duckdb.DuckDBPyConnection, sha256: str, kind: str) -> bool:
    # A load that rejected every row it read does not count, so the same file
    # can be loaded again once the cause (a date format, a preset) is fixed.
    # DuckDB 2 keeps a result open until it is fetched to the end, so every
    # query here uses fetchall().
    rows = con.execute(
        """
        select load_id from raw.load_log
        where sha256 = ? and kind = ? and not (n_rows_read > 0 and n_rows_rejected = n_rows_read)
        """,
        [sha256, kind],
    ).fetchall()
    return bool(rows)


def _earlier_load_ids(con: duckdb.DuckDBPyConnection, sha256: str, kind: str) -> list[str]:
    rows = con.execute(
        "select load_id from raw.load_log where sha256 = ? and kind = ? order by loaded_at", [sha256, kind]
    ).fetchall()
    return [row[0] for row in rows]


def _delete_loads(con: duckdb.DuckDBPyConnection, table: str, load_ids: list[str]) -> tuple[int, int]:
    """Delete the rows, rejected rows and log entries of ``load_ids``, and return how many rows and rejected rows went.

    NOTE: a load of another file skips the rows these loads had already
    stored, so those rows go too unless the new load stores them again.
    """
    if not load_ids:
        return 0, 0
    matches = "list_contains(?::varchar[], load_id)"
    [(n_rows,)] = con.execute(f"delete from {table} where {matches}", [load_ids]).fetchall()
    [(n_rejected,)] = con.execute(f"delete from raw.rejected_rows where {matches}", [load_ids]).fetchall()
    con.execute(f"delete from raw.load_log where {matches}", [load_ids]).fetchall()
    return n_rows, n_rejected


def _options(mapping: Mapping, overrides: dict[str, object], id_key: bytes | None = None) -> ReadOptions:
    merged = {**mapping.csv_options, **{key: value for key, value in overrides.items() if value is not None}}
    null_values = merged.get("null_values", [""])
    return ReadOptions(
        encoding=merged.get("encoding"),
        date_format=merged.get("date_format"),
        timezone=merged.get("timezone"),
        delimiter=merged.get("delimiter"),
        decimal_comma=bool(merged.get("decimal_comma", False)),
        null_values=tuple(str(value) for value in null_values),
        id_key=id_key,
    )


def _insert_new_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], meta: list[str]) -> None:
    """Insert the rows of the registered ``incoming`` relation that ``table`` does not contain yet.

    Rows are compared on ``columns`` as a multiset: the k-th copy of a row in
    the file is new when the table contains fewer than k copies.
    """
    fields = ", ".join(quote_identifier(name) for name in columns)
    matches = " and ".join(
        f"numbered.{quote_identifier(name)} is not distinct from existing.{quote_identifier(name)}" for name in columns
    )
    con.execute(
        f"""
        insert into {table} ({', '.join(meta)}, {fields})
        with
        numbered as (
            select *, row_number() over (partition by {fields} order by source_line) as occurrence
            from incoming
        ),
        existing as (
            select {fields}, count(*) as n_existing
            from {table}
            group by all
        )
        select {', '.join(f'numbered.{name}' for name in meta)}, {', '.join(f'numbered.{quote_identifier(n)}' for n in columns)}
        from numbered
        left join existing on {matches}
        where numbered.occurrence > coalesce(existing.n_existing, 0)
        """
    ).fetchall()


def _count(con: duckdb.DuckDBPyConnection, table: str, load_id: str) -> int:
    return con.execute(f"select count(*) from {table} where load_id = ?", [load_id]).fetchall()[0][0]


def _store(con, converted: Converted, kind: str, load_id: str, file_name: str) -> tuple[int, int]:
    """Insert the loaded and rejected rows; return how many of each were new."""
    contract = CONTRACTS[kind]
    meta = ["load_id", "source_file", "source_line"]
    columns = list(contract.field_names) + ([ATTRIBUTES] if contract.keeps_attributes else [])

    incoming = converted.loaded.rename({LINE_COLUMN: "source_line"}).with_columns(
        pl.lit(load_id).alias("load_id"), pl.lit(file_name).alias("source_file")
    )
    con.register("incoming", incoming.to_arrow())
    try:
        _insert_new_rows(con, contract.table, columns, meta)
    finally:
        con.unregister("incoming")

    rejected = converted.rejected.rename({LINE_COLUMN: "source_line"}).with_columns(
        pl.lit(load_id).alias("load_id"), pl.lit(file_name).alias("source_file"), pl.lit(kind).alias("kind")
    )
    con.register("incoming", rejected.to_arrow())
    try:
        _insert_new_rows(con, "raw.rejected_rows", ["kind", "reason", "column_name", "source_text"], meta)
    finally:
        con.unregister("incoming")
    return _count(con, contract.table, load_id), _count(con, "raw.rejected_rows", load_id)


def _convert_part(path: Path, source: SourceTable, mapping: Mapping, options: ReadOptions) -> Converted:
    """Check that ``mapping`` fits the file's columns and convert its rows without storing them."""
    check_mapping_columns(mapping, source.columns, path.name)
    doubled = [name for name in mapping.source_columns if name in source.duplicate_columns]
    if doubled:
        raise MappingError(
            _("{file} has the column {columns} more than once, so the mapping is ambiguous; remove or rename the copies.").format(
                file=path.name, columns=", ".join(doubled)
            )
        )
    return convert_table(source, mapping, options, path.name)


def _store_part(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    sha256: str,
    source: SourceTable,
    mapping: Mapping,
    converted: Converted,
    notes: tuple[str, ...] = (),
    replace: bool = False,
) -> LoadReport:
    """Store the converted rows of one part in one transaction.

    With ``replace`` the same transaction first deletes every earlier load of
    this file and kind.
    """
    load_id = uuid.uuid4().hex
    n_read = source.n_rows
    rejected_by_reason = dict(converted.rejected.group_by("reason").len().sort("reason").iter_rows())
    con.execute("begin transaction")
    try:
        replaced_load_ids = tuple(_earlier_load_ids(con, sha256, mapping.kind)) if replace else ()
        n_replaced, n_rejected_replaced = _delete_loads(con, CONTRACTS[mapping.kind].table, list(replaced_load_ids))
        n_loaded, n_rejected_new = _store(con, converted, mapping.kind, load_id, path.name)
        n_already = n_read - n_loaded - converted.rejected.height - converted.n_rows_merged
        report = LoadReport(
            source_file=str(path), sha256=sha256, mapping=mapping.name, n_rows_read=n_read, n_rows_loaded=n_loaded,
            skipped_as_repeat=False, line_status_counts={}, kind=mapping.kind,
            n_rows_rejected=converted.rejected.height, rejected_by_reason=rejected_by_reason,
            n_rows_already_loaded=n_already, n_rows_merged=converted.n_rows_merged, file_format=source.file_format,
            encoding=source.encoding, encoding_confidence=source.encoding_confidence, delimiter=source.delimiter,
            date_orders=converted.date_orders, n_dates_converted_to_utc=converted.n_dates_converted_to_utc,
            warnings=tuple(source.warnings + converted.warnings) + notes,
            replaced_load_ids=replaced_load_ids, n_rows_replaced=n_replaced,
            n_rejected_rows_replaced=n_rejected_replaced,
        )
        con.execute(
            """
            insert into raw.load_log (load_id, kind, source_file, sha256, mapping, n_rows_read, n_rows_loaded,
                loaded_at, n_rows_rejected, n_rows_already_loaded, report)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [load_id, mapping.kind, path.name, sha256, mapping.name, n_read, n_loaded,
             datetime.now(timezone.utc).replace(tzinfo=None), converted.rejected.height, n_already, report.to_json()],
        ).fetchall()
        con.execute("commit")
    except duckdb.Error as error:
        con.execute("rollback")
        raise InputFileError(_("Loading {path} failed: {error}").format(path=path, error=error)) from error

    if n_rejected_new < converted.rejected.height:
        logger.info("%s: %d rejected rows were already recorded by an earlier load", path.name, converted.rejected.height - n_rejected_new)
    if report.n_rows_rejected:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in rejected_by_reason.items())
        logger.warning(_("%s: %s of %s rows rejected (%s)"), path.name, f"{report.n_rows_rejected:,}", f"{n_read:,}", reasons)
    if mapping.kind == "orders":
        counts = con.execute(
            "select line_status, count(*) from mkt.stg_order_lines where load_id = ? group by all order by all", [load_id]
        ).fetchall()
        report = LoadReport(**{**report.__dict__, "line_status_counts": dict(counts)})
    return report


def _matching_presets(columns: list[str]) -> list[tuple[str, list[str]]]:
    """Return (preset, kinds) for every preset whose mapped source columns the file all has."""
    present = set(columns)
    matches = []
    for preset in preset_names():
        parts = read_mappings(preset=preset)
        if all(set(part.source_columns) <= present for part in parts):
            matches.append((preset, [part.kind for part in parts]))
    return matches


# Delimiters a header read as one column may hide, in the order they are suggested.
_OTHER_DELIMITERS = (";", ",", "\t", "|")


def _raise_for_near_match(path: Path, columns: list[str]) -> None:
    """Raise a MappingError with the likely fix when the header almost matches: a wrong delimiter or a preset short of a few columns."""
    if len(columns) == 1:
        found = next((mark for mark in _OTHER_DELIMITERS if mark in columns[0]), None)
        if found is not None:
            delimiter_text = "\\t" if found == "\t" else found
            raise MappingError(
                _("The header of {file} was read as one column, which contains '{delimiter}', so the file seems to use that delimiter; leave out --delimiter to detect it, or pass --delimiter '{delimiter}'.").format(
                    file=path.name, delimiter=delimiter_text
                )
            )
    present = set(columns)
    closest = None
    for preset in preset_names():
        for part in read_mappings(preset=preset):
            expected_columns = list(dict.fromkeys(part.source_columns))
            missing = [column for column in expected_columns if column not in present]
            # Half of a part's columns or more must be there to call it close.
            if missing and len(missing) * 2 <= len(expected_columns) and (closest is None or len(missing) < len(closest[1])):
                closest = (preset, missing)
    if closest is not None:
        raise MappingError(
            _("No preset matches the columns of {file}; the closest, {preset}, also needs {missing}. The file's columns are: {columns}. Add the missing columns to the export, or give --mapping FILE.").format(
                file=path.name, preset=closest[0], missing=", ".join(closest[1]), columns=", ".join(columns)
            )
        )


def guess_mappings(
    path: str | Path, kind: str | None = "orders", *, encoding: str | None = None, delimiter: str | None = None
) -> list[Mapping]:
    """Return the mappings that ``path``'s header matches, or raise MappingError naming its columns.

    With a ``kind``, that is one mapping: the contract itself or the first
    preset part of the kind (``guess_mapping``). With ``kind`` None the kind is
    orders, and a header that matches every part of a preset with several
    parts gets all of them, as ``--preset`` would load.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(_("Input file {path} not found.").format(path=path))
    columns = read_source(path, encoding=encoding, delimiter=delimiter).columns
    mapping = guess_mapping(columns, kind or "orders")
    if mapping is None:
        suggested = _matching_presets(columns)
        if suggested:
            raise MappingError(
                _("The columns of {file} match the preset {preset}, which loads {kinds}; rerun with --preset {preset}.").format(
                    file=path.name, preset=suggested[0][0], kinds=", ".join(suggested[0][1])
                )
            )
        _raise_for_near_match(path, columns)
        raise MappingError(
            _("No preset matches the columns of {file} ({columns}); give --mapping FILE or --preset NAME.").format(
                file=path.name, columns=", ".join(columns)
            )
        )
    if kind is None:
        for preset, kinds in _matching_presets(columns):
            if preset == mapping.name and len(kinds) > 1:
                return read_mappings(preset=preset)
    return [mapping]


def check_load_options(*, date_format: str | None, delimiter: str | None) -> None:
    """Raise MappingError for a date format or delimiter that cannot work, before anything is read."""
    if date_format is not None and (problem := date_format_error(date_format)) is not None:
        raise MappingError(problem)
    if delimiter is not None and delimiter not in ("whitespace", "tab", "\\t") and len(delimiter) != 1:
        raise MappingError(
            _("Delimiter {value!r} is not valid: give one character such as ';' or '|', or tab or whitespace.").format(
                value=delimiter
            )
        )


def load_files(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    mappings: Sequence[Mapping],
    *,
    encoding: str | None = None,
    date_format: str | None = None,
    timezone: str | None = None,
    delimiter: str | None = None,
    id_key: bytes | None = None,
    replace: bool = False,
) -> list[LoadReport]:
    """Load every part of a mapping (one per record kind) from ``path``, reading the file once.

    With ``id_key`` every customer id is stored as its HMAC-SHA256 under that
    key (see ``duckmkt.loading.hashing``), in the kind's table and in the
    rejected rows alike. With ``replace`` a part already loaded from a file
    with the same sha256 is loaded again: the rows, rejected rows and log
    entries of those earlier loads are deleted in the transaction that stores
    the new rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(_("Input file {path} not found.").format(path=path))
    check_load_options(date_format=date_format, delimiter=delimiter)
    sha256 = file_sha256(path)

    reports: list[LoadReport] = []
    pending = []
    for mapping in mappings:
        if not replace and _already_loaded(con, sha256, mapping.kind):
            logger.info("%s was loaded before as %s (sha256 %s); nothing added", path.name, mapping.kind, sha256[:12])
            reports.append(LoadReport(str(path), sha256, mapping.name, 0, 0, True, {}, kind=mapping.kind))
        else:
            pending.append(mapping)
    if not pending:
        return reports

    overrides = {"encoding": encoding, "date_format": date_format, "timezone": timezone, "delimiter": delimiter}
    first = _options(pending[0], overrides)
    sheet = pending[0].csv_options.get("sheet")
    source = read_source(path, encoding=first.encoding, delimiter=first.delimiter, sheet=sheet)
    notes = _unmapped_columns_note(source, mappings)
    converted = [_convert_part(path, source, mapping, _options(mapping, overrides, id_key)) for mapping in pending]
    for mapping, part in zip(pending, converted):
        reports.append(_store_part(con, path, sha256, source, mapping, part, notes, replace))
    return reports


def _unmapped_columns_note(source: SourceTable, mappings: Sequence[Mapping]) -> tuple[str, ...]:
    """Return a warning naming the source columns that no part of the mapping loads (none when customers keep them)."""
    if any(CONTRACTS[mapping.kind].keeps_attributes for mapping in mappings):
        return ()
    used = {column for mapping in mappings for column in mapping.source_columns}
    unmapped = [column for column in source.columns if column not in used and column != LINE_COLUMN]
    if not unmapped:
        return ()
    return (
        _("The columns {columns} are in no part of mapping {mapping} and were not loaded; add them to a mapping file to keep them.").format(
            columns=", ".join(unmapped), mapping=mappings[0].name
        ),
    )


def load_file(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    *,
    kind: str = "orders",
    mapping: Mapping | None = None,
    encoding: str | None = None,
    date_format: str | None = None,
    timezone: str | None = None,
    delimiter: str | None = None,
    id_key: bytes | None = None,
    replace: bool = False,
) -> LoadReport:
    """Load the ``kind`` records of ``path`` and return the report.

    With no mapping, the file's header must name the contract's fields or match
    a preset. ``date_format`` is a strptime format or "day-first"/"month-first";
    ``timezone`` (an IANA name) is the zone of date values written without one.
    ``id_key`` hashes customer ids and ``replace`` replaces an earlier load
    of the same file, as in ``load_files``.
    """
    path = Path(path)
    if kind not in CONTRACTS:
        raise MappingError(
            _("Unknown record kind {kind!r}; the kinds are: {kinds}.").format(kind=kind, kinds=", ".join(CONTRACTS))
        )
    if mapping is None:
        check_load_options(date_format=date_format, delimiter=delimiter)
        [mapping] = guess_mappings(path, kind, encoding=encoding, delimiter=delimiter)
        logger.info("Using mapping %s", mapping.name)
    elif mapping.kind != kind:
        raise MappingError(
            _("Mapping {mapping} maps {mapped}, not {kind}; read the {kind} part with read_mapping(..., kind={kind!r}).").format(
                mapping=mapping.name, mapped=mapping.kind, kind=kind
            )
        )
    [report] = load_files(
        con, path, [mapping], encoding=encoding, date_format=date_format, timezone=timezone, delimiter=delimiter,
        id_key=id_key, replace=replace,
    )
    return report


def load_orders(con: duckdb.DuckDBPyConnection, path: str | Path, mapping: Mapping | None = None) -> LoadReport:
    """Append the order lines of ``path`` to ``raw.order_lines``; see load_file."""
    return load_file(con, path, kind="orders", mapping=mapping)
