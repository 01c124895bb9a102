"""Evaluate strategy-rule conditions on NumPy arrays, with DuckDB's semantics.

``score_customer`` assigns a strategy to every batch of 2,048 rows. Running
the compiled CASE expression of ``mkt.strategy_rules`` as a second DuckDB
query per batch cost more than the model itself, so this module evaluates the
same syntax tree (from ``strategy.parse_condition``) on float64 arrays.

It covers the part of the rule language whose result NumPy reproduces exactly:
column names, numeric and boolean constants, comparisons, and/or/not, IS
[NOT] NULL, BETWEEN, IN, COALESCE, CAST to DOUBLE, unary minus and + - * /
on doubles. NULL follows SQL's three-valued logic. Anything else (other
functions, CASE, LIKE, strings, long decimal literals) raises ``Unsupported``
when the rules are compiled, and a value that DuckDB orders differently from
NumPy (NaN) raises it when a batch is evaluated. The caller then runs the
rules in DuckDB, so a rule never gets a second meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

# A column of values with its NULL mask. Booleans use the same pair.
Values = tuple[np.ndarray, np.ndarray]
Columns = Mapping[str, Values]
Program = Callable[[Columns, int], Values]

# A decimal literal with at most this many significant digits converts to the
# same double whether DuckDB divides its unscaled integer by a power of ten or
# Python parses the text.
_EXACT_DIGITS = 15

_COMPARISONS = {
    "COMPARE_EQUAL": np.equal,
    "COMPARE_NOTEQUAL": np.not_equal,
    "COMPARE_LESSTHAN": np.less,
    "COMPARE_LESSTHANOREQUALTO": np.less_equal,
    "COMPARE_GREATERTHAN": np.greater,
    "COMPARE_GREATERTHANOREQUALTO": np.greater_equal,
}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}


class Unsupported(Exception):
    """The condition or the batch needs DuckDB to evaluate it exactly."""


def compile_rules(conditions: Sequence[dict], thresholds: Mapping[str, float], names: Mapping[str, str]) -> Callable:
    """Return a function of (columns, n_rows) giving the index of the first true condition, -1 for none.

    ``conditions`` are syntax trees in priority order; ``names`` maps each
    allowed name to prediction, feature or threshold. Raises Unsupported
    when a tree uses a construct this module does not cover.
    """
    programs = []
    for node in conditions:
        program, kind = _typed(node, thresholds, names)
        if kind not in ("boolean", "null"):
            raise Unsupported(f"a {kind} used as a condition")
        programs.append(program)
    used = sorted({name for node in conditions for name in column_names(node) if names.get(name) != "threshold"})

    def first_true(columns: Columns, n_rows: int) -> np.ndarray:
        for name in used:
            values, nulls = columns[name]
            if _has_nan(values, nulls):
                raise Unsupported(name)
        chosen = np.full(n_rows, -1, dtype=np.int32)
        undecided = np.ones(n_rows, dtype=bool)
        for index, program in enumerate(programs):
            truth, nulls = program(columns, n_rows)
            hit = undecided & truth.astype(bool) & ~nulls
            chosen[hit] = index
            undecided &= ~hit
            if not undecided.any():
                break
        return chosen

    first_true.used_names = used
    return first_true


def column_names(node) -> set[str]:
    """Return the lower-cased column names a syntax tree refers to."""
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("class") == "COLUMN_REF":
            found.add(node["column_names"][0].lower())
        for value in node.values():
            found |= column_names(value)
    elif isinstance(node, list):
        for value in node:
            found |= column_names(value)
    return found


def _typed(node: dict, thresholds: Mapping[str, float], names: Mapping[str, str]) -> tuple[Program, str]:
    """Return the program of ``node`` and its type: 'number', 'boolean' or 'null' (a NULL literal).

    Types are checked so that a mix DuckDB would cast or reject, such as a
    number used as a condition, is left to DuckDB.
    """
    kind = node.get("class")
    node_type = node.get("type")

    def child(subnode: dict, *expected: str) -> Program:
        program, child_kind = _typed(subnode, thresholds, names)
        if child_kind != "null" and child_kind not in expected:
            raise Unsupported(f"{child_kind} operand of {kind} {node_type}")
        return program

    if kind == "COLUMN_REF":
        name = node["column_names"][0].lower()
        if names[name] == "threshold":
            return _constant(float(thresholds[name]), is_null=False), "number"
        return (lambda columns, n_rows: columns[name]), "number"

    if kind == "CONSTANT":
        return _compile_constant(node["literal"])

    if kind == "COMPARISON" and node_type in _COMPARISONS:
        left, right = child(node["left"], "number"), child(node["right"], "number")
        return _binary(_COMPARISONS[node_type], left, right), "boolean"

    if kind == "CONJUNCTION" and node_type in ("CONJUNCTION_AND", "CONJUNCTION_OR"):
        children = [child(subnode, "boolean") for subnode in node["children"]]
        return (_all_of(children) if node_type == "CONJUNCTION_AND" else _any_of(children)), "boolean"

    if kind == "OPERATOR" and node_type == "OPERATOR_NOT":
        return _not(child(node["children"][0], "boolean")), "boolean"
    if kind == "OPERATOR" and node_type in ("OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL"):
        argument = child(node["children"][0], "number", "boolean")
        return _is_null(argument, negate=node_type == "OPERATOR_IS_NOT_NULL"), "boolean"
    if kind == "OPERATOR" and node_type == "OPERATOR_COALESCE":
        return _coalesce([child(subnode, "number") for subnode in node["children"]]), "number"
    if kind == "OPERATOR" and node_type in ("COMPARE_IN", "COMPARE_NOT_IN"):
        value, *candidates = [child(subnode, "number") for subnode in node["children"]]
        matches = _any_of([_binary(np.equal, value, candidate) for candidate in candidates])
        return (_not(matches) if node_type == "COMPARE_NOT_IN" else matches), "boolean"

    if kind == "BETWEEN":
        value = child(node["input"], "number")
        lower = _binary(np.greater_equal, value, child(node["lower"], "number"))
        upper = _binary(np.less_equal, value, child(node["upper"], "number"))
        return _all_of([lower, upper]), "boolean"

    if kind == "CAST" and not node.get("try_cast") and str(node["type_expr"].get("type_name", "")).upper() == "DOUBLE":
        return child(node["child"], "number"), "number"

    if kind == "FUNCTION" and node.get("function_name") in _ARITHMETIC:
        arguments = [child(argument["expression"], "number") for argument in node["arguments"]]
        if len(arguments) == 2:
            return _binary(_ARITHMETIC[node["function_name"]], *arguments), "number"
        if len(arguments) == 1 and node["function_name"] in ("+", "-"):
            sign = -1.0 if node["function_name"] == "-" else 1.0
            return _unary(lambda values: sign * values, arguments[0]), "number"

    raise Unsupported(f"{kind} {node_type} {node.get('function_name', '')}".strip())


def _compile_constant(literal: dict) -> tuple[Program, str]:
    kind, text = literal.get("kind"), literal.get("text", "")
    if kind == "NULL_LITERAL":
        return _constant(0.0, is_null=True), "null"
    if kind == "BOOLEAN":
        return _constant(text.lower() == "true", is_null=False), "boolean"
    if kind in ("INTEGER", "NUMERIC"):
        digits = text.lower().split("e")[0].lstrip("+-").replace(".", "").lstrip("0")
        if len(digits) > _EXACT_DIGITS:
            raise Unsupported(f"literal {text}")
        return _constant(float(text), is_null=False), "number"
    raise Unsupported(f"literal kind {kind}")


def _constant(value: float | bool, *, is_null: bool) -> Program:
    # Every batch but the last has the same size, so the arrays are built
    # once per size. They are read-only because programs share them.
    by_size: dict[int, Values] = {}

    def program(columns: Columns, n_rows: int) -> Values:
        if n_rows not in by_size:
            values, nulls = np.full(n_rows, value), np.full(n_rows, is_null)
            values.flags.writeable = False
            nulls.flags.writeable = False
            by_size[n_rows] = (values, nulls)
        return by_size[n_rows]

    return program


def _has_nan(values: np.ndarray, nulls: np.ndarray) -> bool:
    """Return whether a non-NULL value is NaN (NULL rows hold arbitrary values)."""
    if not np.isnan(values).any():
        return False
    return bool(np.isnan(values[~nulls]).any())


def _binary(operation, left: Program, right: Program) -> Program:
    def program(columns: Columns, n_rows: int) -> Values:
        left_values, left_nulls = left(columns, n_rows)
        right_values, right_nulls = right(columns, n_rows)
        with np.errstate(all="ignore"):
            result = operation(left_values, right_values)
        nulls = left_nulls | right_nulls
        if result.dtype.kind == "f" and _has_nan(result, nulls):
            # DuckDB orders NaN above every number; NumPy compares it false.
            raise Unsupported("NaN")
        return result, nulls

    return program


def _unary(operation, argument: Program) -> Program:
    def program(columns: Columns, n_rows: int) -> Values:
        values, nulls = argument(columns, n_rows)
        return operation(values), nulls

    return program


def _all_of(children: Sequence[Program]) -> Program:
    """SQL AND: false wins over NULL, NULL wins over true."""

    def program(columns: Columns, n_rows: int) -> Values:
        any_false = np.zeros(n_rows, dtype=bool)
        any_null = np.zeros(n_rows, dtype=bool)
        for child in children:
            truth, nulls = child(columns, n_rows)
            any_false |= ~truth.astype(bool) & ~nulls
            any_null |= nulls
        return ~any_false, any_null & ~any_false

    return program


def _any_of(children: Sequence[Program]) -> Program:
    """SQL OR: true wins over NULL, NULL wins over false."""

    def program(columns: Columns, n_rows: int) -> Values:
        any_true = np.zeros(n_rows, dtype=bool)
        any_null = np.zeros(n_rows, dtype=bool)
        for child in children:
            truth, nulls = child(columns, n_rows)
            any_true |= truth.astype(bool) & ~nulls
            any_null |= nulls
        return any_true, any_null & ~any_true

    return program


def _not(child: Program) -> Program:
    def program(columns: Columns, n_rows: int) -> Values:
        truth, nulls = child(columns, n_rows)
        return ~truth.astype(bool), nulls

    return program


def _is_null(child: Program, *, negate: bool) -> Program:
    def program(columns: Columns, n_rows: int) -> Values:
        _values, nulls = child(columns, n_rows)
        return (~nulls if negate else nulls.copy()), np.zeros(n_rows, dtype=bool)

    return program


def _coalesce(children: Sequence[Program]) -> Program:
    def program(columns: Columns, n_rows: int) -> Values:
        values, nulls = children[0](columns, n_rows)
        values, nulls = values.astype(np.float64, copy=True), nulls.copy()
        for child in children[1:]:
            if not nulls.any():
                break
            next_values, next_nulls = child(columns, n_rows)
            values[nulls] = next_values[nulls]
            nulls &= next_nulls
        return values, nulls

    return program
