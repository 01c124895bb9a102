"""Load order-line files into ``raw.order_lines``.

A mapping (a TOML file, or one of the presets shipped in ``duckmkt/presets``)
names the source column behind each field of the order-line contract. Every
value is stored as text; the staging views type it, so no value is rounded or
misread at load time, and ids keep their leading zeros.
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import duckdb

from duckmkt.errors import InputFileError, MappingError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

ORDER_FIELDS = ("customer_id", "order_id", "ordered_at", "product_id", "quantity", "unit_price")
OPTIONAL_ORDER_FIELDS = ("description", "country")

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.zst", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Mapping:
    """Which source column fills each field of the order-line contract."""

    name: str
    columns: dict[str, str]
    csv_options: dict[str, object] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise MappingError unless every required field is mapped and no unknown field is."""
        missing = [name for name in ORDER_FIELDS if name not in self.columns]
        if missing:
            raise MappingError(
                _("Mapping {mapping} does not map the required fields: {fields}.").format(
                    mapping=self.name, fields=", ".join(missing)
                )
            )
        known = set(ORDER_FIELDS) | set(OPTIONAL_ORDER_FIELDS)
        unknown = sorted(set(self.columns) - known)
        if unknown:
            raise MappingError(
                _("Mapping {mapping} has unknown fields {fields}; the order-line fields are: {known}.").format(
                    mapping=self.name, fields=", ".join(unknown), known=", ".join(ORDER_FIELDS + OPTIONAL_ORDER_FIELDS)
                )
            )


@dataclass(frozen=True)
class LoadReport:
    """What one load did."""

    source_file: str
    sha256: str
    mapping: str
    n_rows_read: int
    n_rows_loaded: int
    skipped_as_repeat: bool
    line_status_counts: dict[str, int]


def preset_names() -> list[str]:
    """Return the names of the mapping presets shipped with duckmkt."""
    folder = resources.files("duckmkt") / "presets"
    return sorted(Path(str(entry)).stem for entry in folder.iterdir() if str(entry).endswith(".toml"))


def read_mapping(path: str | Path | None = None, *, preset: str | None = None) -> Mapping:
    """Read a mapping from a TOML file or a preset name."""
    if preset is not None:
        if preset not in preset_names():
            raise MappingError(
                _("Unknown preset {preset!r}; the presets are: {presets}.").format(
                    preset=preset, presets=", ".join(preset_names())
                )
            )
        text = (resources.files("duckmkt") / "presets" / f"{preset}.toml").read_text(encoding="utf-8")
        name = preset
    elif path is not None:
        path = Path(path)
        if not path.is_file():
            raise MappingError(_("Mapping file {path} not found.").format(path=path))
        text = path.read_text(encoding="utf-8")
        name = str(path)
    else:
        raise MappingError(_("Give a mapping file or a preset name."))

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise MappingError(_("Mapping {mapping} is not valid TOML: {error}").format(mapping=name, error=error)) from error

    columns = document.get("columns")
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise MappingError(
            _("Mapping {mapping} needs a [columns] table of field = \"source column\" lines.").format(mapping=name)
        )
    mapping = Mapping(name=name, columns=dict(columns), csv_options=dict(document.get("csv", {})))
    mapping.validate()
    return mapping


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _reader_sql(path: Path, mapping: Mapping) -> str:
    """Return a DuckDB table expression that reads ``path`` with every column as text."""
    name = path.name.lower()
    literal = _quote_literal(str(path))
    if name.endswith(PARQUET_SUFFIXES):
        return f"read_parquet({literal})"
    if name.endswith(CSV_SUFFIXES):
        options = ["all_varchar = true", "header = true"]
        delimiter = mapping.csv_options.get("delimiter")
        if isinstance(delimiter, str):
            options.append(f"delim = {_quote_literal(delimiter)}")
        return f"read_csv({literal}, {', '.join(options)})"
    raise InputFileError(
        _("Unsupported file type {name}; use CSV ({csv}) or Parquet ({parquet}).").format(
            name=path.name, csv=", ".join(CSV_SUFFIXES), parquet=", ".join(PARQUET_SUFFIXES)
        )
    )


def source_columns(con: duckdb.DuckDBPyConnection, path: Path, mapping: Mapping) -> list[str]:
    """Return the column names of the file as DuckDB reads them."""
    try:
        described = con.execute(f"describe select * from {_reader_sql(path, mapping)}").fetchall()
    except duckdb.Error as error:
        raise InputFileError(_("Could not read {path}: {error}").format(path=path, error=error)) from error
    return [row[0] for row in described]


def check_mapping_columns(mapping: Mapping, columns: list[str], path: Path) -> None:
    """Raise MappingError naming any mapped column the file does not have."""
    absent = [source for source in mapping.columns.values() if source not in columns]
    if absent:
        raise MappingError(
            _("Mapping {mapping} names columns that {file} does not have: {absent}. The file's columns are: {columns}.").format(
                mapping=mapping.name, file=path.name, absent=", ".join(absent), columns=", ".join(columns)
            )
        )


def guess_mapping(columns: list[str]) -> Mapping | None:
    """Return the first preset, or the contract itself, whose columns the file has."""
    identity = {name: name for name in ORDER_FIELDS + OPTIONAL_ORDER_FIELDS if name in columns}
    if all(name in identity for name in ORDER_FIELDS):
        return Mapping(name="order-line contract", columns=identity)
    for preset in preset_names():
        mapping = read_mapping(preset=preset)
        if all(source in columns for source in mapping.columns.values()):
            return mapping
    return None


def load_orders(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    mapping: Mapping | None = None,
) -> LoadReport:
    """Append the order lines of ``path`` to ``raw.order_lines``.

    A file whose sha256 was loaded before is skipped. With no mapping, the
    file's header must match the contract or a preset. The rows and the log
    entry are written in one transaction.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(_("Input file {path} not found.").format(path=path))

    sha256 = file_sha256(path)
    # DuckDB 2 keeps a result open until it is fetched to the end, so every
    # query here uses fetchall().
    previous = con.execute(
        "select load_id from raw.load_log where sha256 = ? and kind = 'orders'", [sha256]
    ).fetchall()
    if previous:
        logger.info("%s was loaded before (sha256 %s); nothing added", path.name, sha256[:12])
        return LoadReport(str(path), sha256, mapping.name if mapping else "", 0, 0, True, {})

    columns = source_columns(con, path, mapping or Mapping("probe", {}))
    if mapping is None:
        mapping = guess_mapping(columns)
        if mapping is None:
            raise MappingError(
                _("No preset matches the columns of {file} ({columns}); give --mapping FILE or --preset NAME.").format(
                    file=path.name, columns=", ".join(columns)
                )
            )
        logger.info("Using mapping %s", mapping.name)
    check_mapping_columns(mapping, columns, path)

    load_id = uuid.uuid4().hex
    select_list = ", ".join(
        f"{_quote_identifier(mapping.columns[name])}::varchar as {name}" if name in mapping.columns else f"null::varchar as {name}"
        for name in ORDER_FIELDS + OPTIONAL_ORDER_FIELDS
    )
    # The header is line 1, so the first data row is line 2 of the file.
    first_line = 2 if not path.name.lower().endswith(PARQUET_SUFFIXES) else 1
    insert = f"""
        insert into raw.order_lines
        select
            {_quote_literal(load_id)} as load_id,
            {_quote_literal(path.name)} as source_file,
            row_number() over () + {first_line - 1} as source_line,
            {select_list}
        from {_reader_sql(path, mapping)}
    """

    con.execute("begin transaction")
    try:
        con.execute(insert)
        n_rows = con.execute("select count(*) from raw.order_lines where load_id = ?", [load_id]).fetchall()[0][0]
        con.execute(
            "insert into raw.load_log values (?, 'orders', ?, ?, ?, ?, ?, ?)",
            [load_id, path.name, sha256, mapping.name, n_rows, n_rows, datetime.now(timezone.utc).replace(tzinfo=None)],
        )
        con.execute("commit")
    except duckdb.Error as error:
        con.execute("rollback")
        raise InputFileError(_("Loading {path} failed: {error}").format(path=path, error=error)) from error

    counts = dict(
        con.execute(
            "select line_status, count(*) from mkt.stg_order_lines where load_id = ? group by all order by all",
            [load_id],
        ).fetchall()
    )
    return LoadReport(str(path), sha256, mapping.name, n_rows, n_rows, False, counts)
