"""Translate the DuckDB SQL files under ``sql/`` into Spark SQL with sqlglot.

sqlglot (https://github.com/tobymao/sqlglot) parses each view or table macro
in the DuckDB dialect and generates Spark SQL. Where the two engines differ in
meaning, not only in spelling, a rule in ``RULES`` rewrites the syntax tree
first. Each rule handles one construct:

* ``epoch(ts)``: DuckDB returns seconds as DOUBLE with the fraction, so it
  becomes ``cast(unix_micros(ts) as double) / 1e6``.
* ``to_days(n)``: a day interval, ``make_dt_interval(n)`` in Spark.
* ``try_strptime(text, format)``: ``try_to_timestamp`` with the format in
  Java's pattern letters.
* ``regexp_full_match(text, pattern)``: ``rlike`` on the pattern anchored at
  both ends.
* ``regexp_replace``: DuckDB replaces the first match unless the ``'g'``
  option is given and writes back-references as ``\\1``. Spark always
  replaces every match and writes ``$1``.
* ``a / b``: DuckDB divides integers and decimals as DOUBLE, Spark keeps
  DECIMAL, so both operands are cast to DOUBLE.
* ``avg(x)``: DuckDB returns avg(DECIMAL) as a DOUBLE and Spark as a DECIMAL
  rounded to 4 more digits, so it becomes ``sum(x)`` divided by ``count(x)``
  in DOUBLE, which is how DuckDB computes it.

Constructs with no Spark equivalent (``COLUMNS(*)``, ``UNPIVOT``, DuckDB
table functions such as ``read_csv``) raise ``SparkTranslationError`` naming
the object and the construct.

A table macro ``mkt.x(cutoff)`` is translated with its parameters bound to
literal values. Every ``schema.name`` reference becomes the Spark temporary
view ``schema__name`` (see ``spark_view_name``), and a call of another
macro is resolved by the caller, which turns it into a view name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import SqlglotError

from duckmkt import sql_views
from duckmkt.errors import DuckmktError
from duckmkt.i18n import _

# `create or replace view mkt.x as` or `create or replace macro mkt.x(a, b) as table`.
_HEADER = re.compile(
    r"create\s+or\s+replace\s+(?P<kind>view|macro)\s+(?P<name>\w+\.\w+)\s*"
    r"(?:\((?P<parameters>[^)]*)\))?\s+as\s+(?P<table>table\s+)?",
    re.IGNORECASE,
)
# `name := 'text'` in a macro header: an optional parameter and its default.
_DEFAULT = re.compile(r"(?P<name>\w+)\s*:=\s*'(?P<value>[^']*)'")
_TABLE_HEADER = re.compile(r"create\s+table\s+if\s+not\s+exists\s+(?P<name>\w+\.\w+)", re.IGNORECASE)
_LINE_COMMENT = re.compile(r"--[^\n]*")

Literal = date | int | float | str


class SparkTranslationError(DuckmktError):
    """A SQL object uses a DuckDB construct that has no Spark SQL translation."""


@dataclass(frozen=True)
class SqlObject:
    """One object of the SQL folder: a table, a view or a table macro."""

    name: str
    kind: str  # "table", "view" or "macro"
    layer: str  # the folder under sql/, for example "staging"
    parameters: tuple[str, ...]
    body: str  # the query after the header; empty for a table
    path: Path
    # (name, value) of the parameters that have a default, which callers may omit.
    defaults: tuple[tuple[str, Literal], ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        """The parameters without a default."""
        optional = dict(self.defaults)
        return tuple(name for name in self.parameters if name not in optional)


def read_objects(root: Path | None = None) -> dict[str, SqlObject]:
    """Read every SQL file under ``root`` (the installed ``sql/`` folder by default), keyed by object name."""
    objects = {}
    for sql_file in sql_views.discover(root):
        text = _LINE_COMMENT.sub("", sql_file.text())
        header = _HEADER.search(text)
        if header is not None:
            parameters, defaults = _parameters(header["parameters"] or "")
            kind = "macro" if header["kind"].lower() == "macro" else "view"
            objects[sql_file.name] = SqlObject(
                sql_file.name, kind, sql_file.layer, parameters, text[header.end():], sql_file.path, defaults
            )
        elif _TABLE_HEADER.search(text):
            objects[sql_file.name] = SqlObject(sql_file.name, "table", sql_file.layer, (), "", sql_file.path)
    return objects


def _parameters(text: str) -> tuple[tuple[str, ...], tuple[tuple[str, Literal], ...]]:
    """Split a macro header's parameter list into the names and the (name, default) pairs."""
    names, defaults = [], []
    for parameter in (p.strip() for p in text.split(",")):
        if not parameter:
            continue
        default = _DEFAULT.fullmatch(parameter)
        if default is None:
            names.append(parameter)
        else:
            names.append(default["name"])
            defaults.append((default["name"], default["value"]))
    return tuple(names), tuple(defaults)


def spark_view_name(name: str) -> str:
    """Return the Spark temporary view name of a DuckDB object: ``mkt.int_orders`` -> ``mkt__int_orders``.

    Spark temporary views cannot carry a database name, so the schema becomes
    a prefix.
    """
    return name.replace(".", "__")


@dataclass
class _Context:
    name: str
    arguments: Mapping[str, Literal]
    resolve_call: Callable[[str, tuple[Literal, ...]], str]
    references: set[str]


def translate(
    sql_object: SqlObject,
    arguments: Mapping[str, Literal] | None = None,
    resolve_call: Callable[[str, tuple[Literal, ...]], str] | None = None,
) -> str:
    """Return the Spark SQL query of a view, or of a macro with ``arguments`` bound.

    ``resolve_call(macro_name, argument_values)`` must return the Spark view
    that contains a macro called from this one. Raises SparkTranslationError
    when the SQL uses a construct Spark cannot express.
    """
    arguments = {**dict(sql_object.defaults), **dict(arguments or {})}
    if sql_object.kind == "table":
        raise SparkTranslationError(
            _("{name} is a table, not a view; load its rows into Spark instead of translating it.").format(
                name=sql_object.name
            )
        )
    missing = [p for p in sql_object.parameters if p not in arguments]
    unknown = [a for a in arguments if a not in sql_object.parameters]
    if missing or unknown:
        raise SparkTranslationError(
            _("{name} takes the parameters ({expected}); got ({given}).").format(
                name=sql_object.name,
                expected=", ".join(sql_object.parameters),
                given=", ".join(arguments),
            )
        )

    try:
        tree = sqlglot.parse_one(sql_object.body, read="duckdb")
    except SqlglotError as error:
        raise SparkTranslationError(
            _("{name}: sqlglot could not parse the DuckDB SQL in {path}: {error}").format(
                name=sql_object.name, path=sql_object.path, error=error
            )
        ) from error

    context = _Context(sql_object.name, arguments, resolve_call or _no_calls(sql_object.name), set())
    for rule in RULES:
        tree = _apply(rule, tree, context)
    return tree.sql(dialect="spark")


def _apply(rule, tree: exp.Expression, context: _Context) -> exp.Expression:
    """Apply ``rule`` to every node, children before their parent, so nested matches are all rewritten."""
    for node in reversed(list(tree.walk(bfs=False))):
        replacement = rule(node, context)
        if replacement is node:
            continue
        if node is tree:
            tree = replacement
        else:
            node.replace(replacement)
    return tree


def references(sql_object: SqlObject) -> set[str]:
    """Return the ``schema.name`` objects a view or macro reads, macro calls included."""
    tree = sqlglot.parse_one(sql_object.body, read="duckdb")
    defaults = dict(sql_object.defaults)
    found = set()
    for table in tree.find_all(exp.Table):
        inner = table.this
        if _is_query_table(inner):
            argument = inner.expressions[0] if inner.expressions else None
            if isinstance(argument, exp.Column) and argument.name in defaults:
                found.add(str(defaults[argument.name]))
            elif isinstance(argument, exp.Literal) and argument.is_string:
                found.add(argument.name)
            continue
        if table.args.get("db") is None:
            continue
        name = inner.name if isinstance(inner, exp.Anonymous) else table.name
        found.add(f"{table.db}.{name}")
    return found


def _no_calls(name: str) -> Callable[[str, tuple[Literal, ...]], str]:
    def resolve(macro: str, values: tuple[Literal, ...]) -> str:
        raise SparkTranslationError(
            _("{name} calls the table macro {macro}, and no resolver for macro calls was given.").format(
                name=name, macro=macro
            )
        )

    return resolve


def _unsupported(context: _Context, construct: str) -> SparkTranslationError:
    return SparkTranslationError(
        _("{name} cannot be translated to Spark SQL: {construct} has no Spark equivalent; rewrite it in portable SQL.").format(
            name=context.name, construct=construct
        )
    )


def _to_double(node: exp.Expression) -> exp.Expression:
    return exp.cast(node, exp.DataType.build("double"))


def _literal(value: Literal) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("date"))
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


# --- rules: each takes one node and returns it or its replacement ---------


def bind_parameters(node: exp.Expression, context: _Context) -> exp.Expression:
    """Replace an unqualified column named like a macro parameter by the bound value."""
    if isinstance(node, exp.Column) and not node.table and node.name in context.arguments:
        return _literal(context.arguments[node.name])
    return node


def _is_query_table(node: exp.Expression) -> bool:
    return isinstance(node, exp.Anonymous) and node.name.lower() == "query_table"


def rename_tables(node: exp.Expression, context: _Context) -> exp.Expression:
    """Point ``schema.name`` at its Spark view, and a macro call at the view the resolver returns.

    ``query_table('schema.name')``, with the name bound from a parameter by
    then, points at the same view as ``schema.name`` would.
    """
    if not isinstance(node, exp.Table):
        return node
    inner = node.this
    if _is_query_table(inner):
        arguments = inner.expressions
        value = _literal_value(arguments[0], context, "query_table") if len(arguments) == 1 else None
        if not isinstance(value, str) or "." not in value:
            raise _unsupported(context, _("query_table() with an argument other than one 'schema.name' text"))
        context.references.add(value)
        return exp.Table(this=exp.to_identifier(spark_view_name(value)), alias=node.args.get("alias"))
    if node.args.get("db") is None:
        return node
    if isinstance(inner, exp.Anonymous):
        name = f"{node.db}.{inner.name}"
        values = tuple(_literal_value(argument, context, name) for argument in inner.expressions)
        view = context.resolve_call(name, values)
    else:
        name = f"{node.db}.{node.name}"
        view = spark_view_name(name)
    context.references.add(name)
    return exp.Table(this=exp.to_identifier(view), alias=node.args.get("alias"))


def _literal_value(argument: exp.Expression, context: _Context, macro: str) -> Literal:
    """Return the Python value of a bound macro argument, or raise if it is not constant."""
    if isinstance(argument, exp.Cast) and isinstance(argument.this, exp.Literal) and argument.to.is_type("date"):
        return date.fromisoformat(argument.this.name)
    if isinstance(argument, exp.Literal):
        return argument.to_py()
    raise _unsupported(
        context,
        _("the call of {macro} with the non-constant argument {argument}").format(
            macro=macro, argument=argument.sql("duckdb")
        ),
    )


def reject_duckdb_only(node: exp.Expression, context: _Context) -> exp.Expression:
    """Raise on constructs that only DuckDB has."""
    if isinstance(node, exp.Columns):
        raise _unsupported(context, "COLUMNS(...)")
    if isinstance(node, exp.Pivot) and node.args.get("unpivot"):
        raise _unsupported(context, "UNPIVOT")
    if isinstance(node, exp.Pivot):
        raise _unsupported(context, "PIVOT")
    return node


def drop_materialized(node: exp.Expression, context: _Context) -> exp.Expression:
    """Drop DuckDB's ``as materialized`` hint of a CTE; Spark SQL has no such keyword.

    The hint only saves DuckDB from computing a CTE once per reference; Spark
    plans CTEs its own way, and the result is the same.
    """
    if isinstance(node, exp.CTE) and node.args.get("materialized"):
        node.set("materialized", None)
    return node


def translate_epoch(node: exp.Expression, context: _Context) -> exp.Expression:
    if isinstance(node, exp.TimeToUnix):
        # unix_micros takes TIMESTAMP_LTZ; the session time zone is UTC (see
        # duckmkt.spark.session), so the cast keeps the wall-clock value.
        local = exp.cast(node.this, exp.DataType.build("timestamp_ltz", dialect="spark"))
        micros = exp.Anonymous(this="unix_micros", expressions=[local])
        return exp.Div(this=_to_double(micros), expression=exp.Literal.number("1e6"))
    return node


def translate_to_days(node: exp.Expression, context: _Context) -> exp.Expression:
    if isinstance(node, exp.ToDays):
        return exp.Anonymous(this="make_dt_interval", expressions=[node.this])
    return node


def translate_try_strptime(node: exp.Expression, context: _Context) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and node.name.lower() == "try_strptime":
        text, pattern = node.expressions
        if not isinstance(pattern, exp.Literal):
            raise _unsupported(context, "try_strptime with a non-constant format")
        parsed = sqlglot.parse_one(f"strptime(x, {pattern.sql('duckdb')})", read="duckdb")
        # format_time returns the format as a quoted Spark string literal.
        java_format = sqlglot.parse_one(Spark().generator().format_time(parsed), read="spark").name
        parsed_time = exp.Anonymous(this="try_to_timestamp", expressions=[text, exp.Literal.string(java_format)])
        # DuckDB's TIMESTAMP has no time zone.
        return exp.cast(parsed_time, exp.DataType.build("timestamp_ntz", dialect="spark"))
    return node


def translate_regexp_full_match(node: exp.Expression, context: _Context) -> exp.Expression:
    if isinstance(node, exp.RegexpFullMatch):
        if node.args.get("options") is not None:
            raise _unsupported(context, "regexp_full_match with options")
        anchored = exp.func("concat", exp.Literal.string("^(?:"), node.expression, exp.Literal.string(")$"))
        return exp.RegexpLike(this=node.this, expression=anchored)
    return node


def translate_regexp_replace(node: exp.Expression, context: _Context) -> exp.Expression:
    if not isinstance(node, exp.RegexpReplace):
        return node
    modifiers = node.args.get("modifiers")
    options = modifiers.name if isinstance(modifiers, exp.Literal) else ""
    pattern = node.expression
    anchored = isinstance(pattern, exp.Literal) and pattern.name.startswith("^")
    # Spark replaces every match; that equals DuckDB's first-match default
    # only when the pattern is anchored at the start and so matches once.
    if modifiers is not None and options != "g":
        raise _unsupported(context, _("regexp_replace with the options '{options}'").format(options=options))
    if "g" not in options and not anchored:
        raise _unsupported(context, "regexp_replace without 'g' on an unanchored pattern")
    replacement = node.args.get("replacement")
    if replacement is not None:
        if not isinstance(replacement, exp.Literal):
            raise _unsupported(context, "regexp_replace with a non-constant replacement")
        java = replacement.name.replace("$", "\\$")
        java = re.sub(r"\\(\d)", r"$\1", java)
        replacement = exp.Literal.string(java)
    return exp.RegexpReplace(this=node.this, expression=pattern, replacement=replacement)


def translate_division(node: exp.Expression, context: _Context) -> exp.Expression:
    if isinstance(node, exp.Div):
        return exp.Div(this=_to_double(node.this), expression=_to_double(node.expression))
    return node


def translate_avg(node: exp.Expression, context: _Context) -> exp.Expression:
    """Rewrite ``avg(x)`` as ``cast(sum(x) as double) / cast(count(x) as double)``.

    DuckDB 2.0 returns avg(DECIMAL) as DOUBLE equal to that quotient (checked
    on every Online Retail customer), while Spark's avg(DECIMAL) is a
    DECIMAL rounded to the input scale plus 4 digits.
    """
    if not isinstance(node, exp.Avg):
        return node
    if isinstance(node.parent, exp.Window):
        # A windowed avg would need both aggregates over the same window.
        raise _unsupported(context, "avg(...) over (...)")
    argument = node.this
    total = _to_double(exp.Sum(this=argument.copy()))
    count = _to_double(exp.Count(this=argument.copy()))
    return exp.Paren(this=exp.Div(this=total, expression=count))


# Applied in this order, each over the whole tree. Parameters are bound before
# tables are renamed so macro calls see literal arguments, and division is
# rewritten after epoch because epoch produces a division of its own.
RULES: tuple[Callable[[exp.Expression, _Context], exp.Expression], ...] = (
    reject_duckdb_only,
    drop_materialized,
    bind_parameters,
    rename_tables,
    translate_division,
    translate_epoch,
    translate_to_days,
    translate_try_strptime,
    translate_regexp_full_match,
    translate_regexp_replace,
    translate_avg,
)
