"""The score_customer macro of a registered connection.

DuckDB hands a scalar UDF 2,048 rows per call. Everything the UDF does in
Python holds the GIL, so DuckDB's threads wait for each other there. The
macro moves two jobs out of that wait:

- The type check. DuckDB folds ``typeof(features)`` to a constant when it
  plans the query, so the check function runs once per query instead of once
  per batch. It raises duckmkt's own error for a missing or non-numeric
  field before any row is read.
- The cast. SQL casts the struct to DOUBLE fields in the model's order on
  every thread. The UDF then reads each column in place, and DuckDB converts
  no column that the model ignores, such as the text ``customer_id``. The
  one other field kept is ``cutoff_date``, which the out-of-range flags of
  calendar features need (``score_flags.row_bounds``).

The macro also passes the rules' fingerprint, read once per query (see
``scoring._register_checked_macro``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from duckmkt.errors import FeatureError
from duckmkt.i18n import _
from duckmkt.sql_views import quote_identifier

# DuckDB types that the UDF reads as numbers (scoring._to_float accepts the same Arrow types).
_NUMERIC_TYPES = frozenset(
    {
        "null",
        "boolean",
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "hugeint",
        "utinyint",
        "usmallint",
        "uinteger",
        "ubigint",
        "uhugeint",
        "float",
        "double",
        "decimal",
    }
)


def score_macro_sql(
    macro_name: str, function_name: str, check_function: str, fingerprint_function: str, feature_names: Sequence[str]
) -> str:
    """Return ``create or replace temp macro`` text for ``macro_name(features)``.

    The macro calls ``function_name(doubles, fingerprint)``, where ``doubles``
    is the struct cast to DOUBLE fields in ``feature_names`` order, followed
    by ``cutoff_date`` as a DATE, and the fingerprint comes through
    ``check_function(typeof(features), ...)``. A NULL struct stays NULL
    through the cast, so its score is NULL.
    """
    # try_cast matches fields by name and drops the others. A field it cannot
    # convert would become NULL, but the check function has rejected every
    # such feature by then. A missing or non-date cutoff_date becomes NULL
    # (DuckDB 2.0.1), and the flags then use the training ranges as they are.
    fields = [f"{quote_identifier(name)} double" for name in feature_names]
    fields.append("cutoff_date date")
    as_double = "try_cast(features as struct({}))".format(", ".join(fields))
    return f"""
create or replace temp macro {macro_name}(features) as
    {function_name}({as_double}, {check_function}(typeof(features), {fingerprint_function}()))
"""


def feature_type_check(feature_names: Sequence[str], missing_fields: Callable[[Sequence[str]], None]) -> Callable[[str, str], str]:
    """Return the macro's check function, which returns the fingerprint it is given or raises.

    It takes the struct's type as text and the fingerprint. ``missing_fields``
    raises the error that names missing features, so the macro and the UDF
    word it the same way.
    """

    def check(type_text: str, fingerprint: str) -> str:
        kind = duckdb.sqltype(type_text)
        if kind.id != "struct":
            raise not_a_struct_error(type_text)
        fields = {name: field_type for name, field_type in kind.children}
        missing_fields(list(fields))
        for name in feature_names:
            if fields[name].id not in _NUMERIC_TYPES:
                raise field_type_error(name, fields[name])
        return fingerprint

    return check


def not_a_struct_error(kind: object) -> FeatureError:
    """Return the error for a score_customer argument that is not a struct."""
    return FeatureError(
        _("score_customer expects a struct of features, for example score_customer(f) with f a row of mkt.customer_features; it got {type}.").format(
            type=kind
        )
    )


def field_type_error(name: str, kind: object) -> FeatureError:
    """Return the error for a feature field whose type is not numeric."""
    return FeatureError(
        _("score_customer: field {field} has type {type}; it must be numeric. Cast it, for example {field}::double.").format(
            field=name, type=kind
        )
    )
