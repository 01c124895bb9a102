"""Turn the text columns of a source table into the typed fields of one contract.

Every row ends in exactly one of two frames: ``loaded`` (the contract's
fields plus the source line) or ``rejected`` (line, reason, field, source
text). A conversion never rounds: a value that cannot be held exactly is a
rejected row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from duckmkt.loading import contracts as c
from duckmkt.loading.dates import DerivedDate, parse_dates
from duckmkt.loading.hashing import hash_id_column, hashing_id_converter
from duckmkt.loading.mapping import Mapping
from duckmkt.loading.readers import LINE_COLUMN, SourceTable
from duckmkt.loading.values import convert_flag, convert_id, convert_integer, convert_number, number_text

logger = logging.getLogger(__name__)

ATTRIBUTES = "attributes"
_POLARS_TYPES = {
    c.ID: pl.String,
    c.TEXT: pl.String,
    c.TIMESTAMP: pl.Datetime("us"),
    c.NUMBER: pl.Float64,
    c.INTEGER: pl.Int64,
    c.FLAG: pl.Boolean,
}


@dataclass
class Converted:
    """The loaded and rejected rows of one contract, and what was decided."""

    loaded: pl.DataFrame
    rejected: pl.DataFrame
    date_orders: dict[str, str] = field(default_factory=dict)
    n_dates_converted_to_utc: int = 0
    n_rows_merged: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadOptions:
    """Options of one load that override the mapping's [file] table."""

    encoding: str | None = None
    date_format: str | None = None
    timezone: str | None = None
    delimiter: str | None = None
    decimal_comma: bool = False
    null_values: tuple[str, ...] = ("",)
    # HMAC key that replaces customer ids by their hash (``--hash-ids``); kept out of repr.
    id_key: bytes | None = field(default=None, repr=False)


def _by_distinct(column: pl.Series, convert: Callable[[str], tuple[object, str | None]], dtype) -> tuple[pl.Series, pl.Series]:
    """Convert each distinct text once; return the values and the rejection reasons."""
    distinct = column.drop_nulls().unique().to_list()
    results = [convert(text) for text in distinct]
    values = column.replace_strict(distinct, [value for value, _reason in results], default=None, return_dtype=dtype)
    reasons = column.replace_strict(distinct, [reason for _value, reason in results], default=None, return_dtype=pl.String)
    return values, reasons


def _source_column(frame: pl.DataFrame, name: str, null_values: tuple[str, ...]) -> pl.Series:
    column = frame[name].str.strip_chars()
    return column.set(column.is_in(list(null_values)).fill_null(False), None) if null_values else column


def _field_text(table: SourceTable, mapping: Mapping, name: str, options: ReadOptions, file_name: str) -> pl.Series:
    """Return the text of one contract field for every row (None where it is empty or unmapped)."""
    frame = table.frame
    height = frame.height
    if name in mapping.columns:
        return _source_column(frame, mapping.columns[name], options.null_values)
    if name in mapping.constants:
        return pl.Series(name, [mapping.constants[name]] * height, dtype=pl.String)
    if mapping.generated.get(name) == "line":
        # One id per source line: "<line>@<file name without suffixes>". It starts
        # with a digit because the orders staging view reads a leading C as a
        # cancellation.
        stem = file_name.split(".")[0]
        return frame.select((pl.col(LINE_COLUMN).cast(pl.String) + pl.lit(f"@{stem}")).alias(name)).to_series()
    return pl.Series(name, [None] * height, dtype=pl.String)


def _convert_field(
    text: pl.Series, spec: c.Field, column: str, mapping: Mapping, options: ReadOptions, result: Converted
) -> tuple[pl.Series, pl.Series]:
    field_type = spec.type
    if spec.name == "customer_id" and options.id_key is not None:
        return _by_distinct(text, hashing_id_converter(options.id_key), pl.String)
    if field_type == c.ID:
        return _by_distinct(text, convert_id, pl.String)
    if field_type == c.NUMBER:
        return _by_distinct(text, lambda value: convert_number(value, options.decimal_comma), pl.Float64)
    if field_type == c.INTEGER:
        return _by_distinct(text, convert_integer, pl.Int64)
    if field_type == c.FLAG:
        return _by_distinct(text, convert_flag, pl.Boolean)
    if field_type == c.TIMESTAMP:
        date_format = mapping.date_formats.get(spec.name) or options.date_format
        parsed = parse_dates(
            text.drop_nulls().unique(maintain_order=True).to_list(), column, date_format=date_format, timezone=options.timezone
        )
        if parsed.order:
            result.date_orders[column] = parsed.order
        result.n_dates_converted_to_utc += parsed.n_converted_to_utc
        return _by_distinct(text, lambda value: (parsed.values[value], None if parsed.values[value] else "invalid_date"), pl.Datetime("us"))
    return text, pl.Series([None] * len(text), dtype=pl.String)


def _attributes(table: SourceTable, mapping: Mapping) -> pl.Series:
    """Return the kept source columns of each row as a JSON object (text)."""
    used = set(mapping.source_columns) - set(mapping.attributes or ())
    names = list(mapping.attributes) if mapping.attributes is not None else [n for n in table.columns if n not in used]
    if not names:
        return pl.Series(ATTRIBUTES, [None] * table.frame.height, dtype=pl.String)
    return table.frame.select(pl.struct([pl.col(name).str.strip_chars() for name in names]).struct.json_encode()).to_series()


def _source_text(table: SourceTable) -> pl.Series:
    return table.frame.select(pl.struct(table.columns).struct.json_encode()).to_series()


def _merge_entities(loaded: pl.DataFrame, key: str, names: list[str]) -> pl.DataFrame:
    """Fold rows with the same key: each field takes its most frequent non-null value, ties to the later line."""
    merged = loaded.group_by(key, maintain_order=True).agg(pl.col(LINE_COLUMN).min())
    for name in names:
        if name == key:
            continue
        choice = (
            loaded.filter(pl.col(name).is_not_null())
            .group_by(key, name)
            .agg(pl.len().alias("n"), pl.col(LINE_COLUMN).max().alias("last_line"))
            .sort(["n", "last_line"], descending=True)
            .unique(subset=[key], keep="first")
            .select(key, name)
        )
        merged = merged.join(choice, on=key, how="left")
    return merged.select([LINE_COLUMN] + names)


def convert_table(table: SourceTable, mapping: Mapping, options: ReadOptions, file_name: str) -> Converted:
    """Convert ``table`` to the fields of ``mapping.kind``; rows that do not convert are rejected."""
    contract = c.CONTRACTS[mapping.kind]
    result = Converted(loaded=pl.DataFrame(), rejected=pl.DataFrame())
    values: dict[str, pl.Series] = {}
    reason_columns: list[pl.Expr] = []
    checks = pl.DataFrame({LINE_COLUMN: table.frame[LINE_COLUMN]})
    # Source rows are copied into rejected_rows and attributes; with hashed ids
    # those copies are built from a table whose id column is hashed too.
    copied = table
    if options.id_key is not None and "customer_id" in mapping.columns:
        copied = hash_id_column(table, mapping.columns["customer_id"], options.id_key, options.null_values)

    for spec in contract.fields:
        if spec.name in mapping.derived_dates:
            derived = DerivedDate.from_spec(mapping.derived_dates[spec.name], mapping.name)
            built = derived.build(table.frame[derived.day].to_list(), table.frame[derived.month].to_list())
            value = pl.Series(spec.name, built, dtype=pl.Datetime("us"))
            reason = pl.Series([None if v else "invalid_date" for v in built], dtype=pl.String)
            column_label = f"{derived.day}+{derived.month}"
        else:
            text = _field_text(table, mapping, spec.name, options, file_name)
            column_label = mapping.columns.get(spec.name, spec.name)
            value, reason = _convert_field(text, spec, column_label, mapping, options, result)
        if spec.required and not contract.keeps_missing_values:
            reason = pl.select(
                pl.when(value.is_null() & reason.is_null()).then(pl.lit("missing_value")).otherwise(reason)
            ).to_series()
        values[spec.name] = value.alias(spec.name)
        checks = checks.with_columns(reason.alias(f"reason:{spec.name}"))
        reason_columns.append(
            pl.when(pl.col(f"reason:{spec.name}").is_not_null()).then(pl.lit(column_label)).otherwise(None)
        )

    reason_names = [f"reason:{name}" for name in contract.field_names]
    checks = checks.with_columns(
        pl.coalesce(reason_names).alias("reason"),
        pl.coalesce(reason_columns).alias("column_name"),
        _source_text(copied).alias("source_text"),
    )

    loaded = pl.DataFrame(values).with_columns(checks[LINE_COLUMN])
    if contract.keeps_attributes:
        loaded = loaded.with_columns(_attributes(copied, mapping).alias(ATTRIBUTES))
    ok = checks["reason"].is_null()
    loaded = loaded.filter(ok)
    names = list(contract.field_names) + ([ATTRIBUTES] if contract.keeps_attributes else [])

    if contract.entity_key:
        merged = _merge_entities(loaded, contract.entity_key, names)
        result.n_rows_merged = loaded.height - merged.height
        loaded = merged
    if contract.stores_text:
        loaded = loaded.with_columns(_as_text(table, mapping, contract, ok, options))

    malformed = pl.DataFrame(
        {
            LINE_COLUMN: [row.line for row in copied.malformed],
            "reason": [row.reason for row in copied.malformed],
            "column_name": [None] * len(copied.malformed),
            "source_text": [row.text for row in copied.malformed],
        },
        schema={LINE_COLUMN: pl.Int64, "reason": pl.String, "column_name": pl.String, "source_text": pl.String},
    )
    rejected = checks.filter(~ok).select(LINE_COLUMN, "reason", "column_name", "source_text")
    result.rejected = pl.concat([rejected, malformed]).sort(LINE_COLUMN)
    result.loaded = loaded.select([LINE_COLUMN] + names)
    return result


def _as_text(table: SourceTable, mapping: Mapping, contract: c.Contract, ok: pl.Series, options: ReadOptions) -> list[pl.Expr]:
    """Return the expressions that turn typed order fields into the text raw.order_lines stores.

    Numbers keep the text as written (stripped), so the staging view's
    exact-duplicate check compares source values; dates become ISO 8601 text.
    """
    expressions = []
    for spec in contract.fields:
        if spec.type == c.TIMESTAMP:
            expressions.append(
                pl.col(spec.name).dt.strftime("%Y-%m-%d %H:%M:%S%.6f").str.strip_suffix(".000000").alias(spec.name)
            )
        elif spec.type == c.NUMBER and spec.name in mapping.columns and not options.decimal_comma:
            written = _source_column(table.frame, mapping.columns[spec.name], ("",)).filter(ok)
            expressions.append(pl.lit(written).alias(spec.name))
        elif spec.type == c.NUMBER:
            expressions.append(pl.col(spec.name).map_elements(number_text, return_dtype=pl.String).alias(spec.name))
    return expressions
