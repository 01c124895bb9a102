"""Strategy rules: from predictions to a marketing action, editable in SQL.

The rules live in the table ``mkt.strategy_rules`` (priority, code,
condition, labels in English and Chinese, channel, action, rationale). They
are checked in ascending priority and the first whose condition is true gives
the customer's strategy code; no match gives NULL. A condition is a DuckDB
boolean expression over the predictions (``purchase_prob``,
``expected_spend``, ``churn_risk``), the customer features and the threshold
names of ``THRESHOLD_QUANTILES``, for example
``churn_risk >= churn_risk_high and recency_days < 90``.

Thresholds are quantiles of the predictions on the model's validation rows,
stored in the model metadata as ``strategy_thresholds``, so they follow the
customer base instead of constants picked by hand.

Safety: a condition is parsed by DuckDB (``json_serialize_sql``), and its
syntax tree is checked against an allow-list of node kinds, functions and
column names before it is compiled. Subqueries, statements, table functions,
parameters and unknown names are rejected with ``StrategyRuleError``.

One compiled form serves both paths, so they always agree:

* ``compile_case_sql`` turns the rules into one ``case when ... end``
  expression over two structs, ``scores`` and ``features``, with the
  thresholds written in as exact double literals.
* ``compile_rules`` installs that expression as the macro
  ``mkt.assign_strategy(scores, features)``. The macro raises an error when
  ``mkt.strategy_rules`` changed after it was compiled, or when ``scores``
  come from another model version than its thresholds.
* ``RuleEvaluator`` (used by ``score_customer``) checks the rules'
  fingerprint on every Arrow batch, recompiles them when they changed, and
  evaluates the same syntax tree on NumPy arrays, or has DuckDB evaluate the
  CASE expression when NumPy cannot match DuckDB exactly.

The shipped default rules (``sql/actions/default_strategy_rules.sql``), in
order:

1. ``retention``: churn_risk in the top quarter and expected_spend at or
   above the median. A valuable customer about to leave is worth a personal
   retention offer or call before anything else.
2. ``tailored_service``: expected_spend in the top tenth. The biggest
   spenders get service (account manager, priority handling) rather than
   more advertising.
3. ``product_recommendation``: purchase_prob at or above the median. A
   customer likely to buy soon responds to relevant products.
4. ``personalized_ad``: purchase_prob in the second quarter. A lukewarm
   customer needs a reason to come back: a personalized ad or offer.
5. ``no_action``: everyone else. A low chance of buying and low value do
   not pay for a contact.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

import duckdb
import numpy as np
import pyarrow as pa

from duckmkt import rule_arrays, rule_constructs
from duckmkt.errors import IncompleteRuleError, StrategyRuleError
from duckmkt.features import FEATURE_NAMES
from duckmkt.i18n import N_, _, get_language
from duckmkt.suggestions import closest_name

logger = logging.getLogger(__name__)

# Quantile of which prediction each threshold is.
# The retention rule measures value by past spend (monetary_value) because a
# customer the model expects to churn is, by the same model, expected to
# spend almost nothing in the horizon: a threshold on expected_spend would
# leave the rule empty.
THRESHOLD_QUANTILES: dict[str, tuple[str, float]] = {
    "churn_risk_high": ("churn_risk", 0.75),
    "monetary_value_median": ("monetary_value", 0.50),
    "expected_spend_median": ("expected_spend", 0.50),
    "expected_spend_top": ("expected_spend", 0.90),
    "purchase_prob_median": ("purchase_prob", 0.50),
    "purchase_prob_low": ("purchase_prob", 0.25),
}

PREDICTION_NAMES = ("purchase_prob", "expected_spend", "churn_risk")
MACRO_NAME = "mkt.assign_strategy"
MAX_CONDITION_LENGTH = 2000

_CODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# Syntax-tree node kinds a condition may contain, as json_serialize_sql of
# DuckDB 2.0 names them. Anything else, such as SUBQUERY, STAR, LAMBDA,
# WINDOW or PARAMETER, is rejected.
_ALLOWED_CLASSES = {"COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "OPERATOR", "BETWEEN", "CASE", "CAST", "FUNCTION", "TYPE"}
_ALLOWED_OPERATORS = {
    "OPERATOR_NOT",
    "OPERATOR_IS_NULL",
    "OPERATOR_IS_NOT_NULL",
    "COMPARE_IN",
    "COMPARE_NOT_IN",
    "OPERATOR_COALESCE",
}
_ALLOWED_FUNCTIONS = {
    "+", "-", "*", "/", "//", "%", "~~", "!~~",
    "abs", "least", "greatest", "ln", "log", "log10", "log2", "sqrt", "exp", "round", "floor", "ceil",
    "nullif", "ifnull", "coalesce", "isnan", "isfinite",
}
_ALLOWED_CAST_TYPES = {"DOUBLE", "FLOAT", "INTEGER", "BIGINT", "DECIMAL", "BOOLEAN", "VARCHAR"}
# Keys of a SELECT node that must be empty for a bare expression.
_EMPTY_SELECT_KEYS = ("where_clause", "having", "qualify", "sample")


@dataclass(frozen=True)
class Strategy:
    """A stable strategy code with its label and action."""

    code: str
    label: str
    action: str

    def localized_label(self) -> str:
        return _(self.label)

    def localized_action(self) -> str:
        return _(self.action)


STRATEGIES: dict[str, Strategy] = {
    strategy.code: strategy
    for strategy in (
        Strategy("retention", N_("Retention"), N_("Contact with a personal retention offer before the customer leaves.")),
        Strategy("tailored_service", N_("Tailored service"), N_("Give priority service and a personal contact.")),
        Strategy(
            "product_recommendation", N_("Product recommendation"), N_("Recommend products matched to past purchases.")
        ),
        Strategy("personalized_ad", N_("Personalized ad"), N_("Show a personalized ad or offer to bring the customer back.")),
        Strategy("no_action", N_("No action"), N_("No paid contact; keep in low-cost channels.")),
    )
}


@dataclass(frozen=True)
class StrategyRule:
    """One row of ``mkt.strategy_rules``."""

    priority: int
    code: str
    condition: str
    label_en: str
    label_zh: str
    channel: str
    action: str
    rationale: str

    def localized_label(self) -> str:
        """Return the label in the active language."""
        return self.label_zh if get_language() == "zh" else self.label_en


RULE_COLUMNS = tuple(field.name for field in fields(StrategyRule))


def compute_thresholds(predictions: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Return the rule thresholds as quantiles of ``predictions``.

    ``predictions`` maps each head, and ``monetary_value``, to its values on
    the validation rows. NaN values (a missing feature) are left out.
    """
    thresholds = {}
    for name, (source, q) in THRESHOLD_QUANTILES.items():
        values = np.asarray(predictions[source], dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        thresholds[name] = float(np.quantile(values, q)) if values.size else float("nan")
    return thresholds


def assign_strategies(
    purchase_prob: np.ndarray,
    expected_spend: np.ndarray,
    churn_risk: np.ndarray,
    thresholds: Mapping[str, float],
    monetary_value: np.ndarray,
) -> np.ndarray:
    """Return the strategy code of every row under the shipped default rules.

    A numpy reference for the defaults in ``mkt.default_strategy_rules``;
    scoring evaluates the rules in ``mkt.strategy_rules`` instead.
    """
    conditions = [
        (churn_risk >= thresholds["churn_risk_high"]) & (monetary_value >= thresholds["monetary_value_median"]),
        expected_spend >= thresholds["expected_spend_top"],
        purchase_prob >= thresholds["purchase_prob_median"],
        purchase_prob >= thresholds["purchase_prob_low"],
    ]
    choices = ["retention", "tailored_service", "product_recommendation", "personalized_ad"]
    return np.select(conditions, choices, default="no_action")


# --- Validation -------------------------------------------------------------


def allowed_names(feature_names: Iterable[str] = FEATURE_NAMES) -> dict[str, str]:
    """Return every name a condition may use, mapped to its kind: prediction, threshold or feature."""
    names = {name: "feature" for name in feature_names}
    names.update({name: "prediction" for name in PREDICTION_NAMES})
    names.update({name: "threshold" for name in THRESHOLD_QUANTILES})
    return names


# One in-memory connection parses and prints every condition: opening one
# costs about 15 ms, and compiling the default rules parses 20 conditions.
_PARSER_LOCK = threading.Lock()
_PARSER: tuple[int, duckdb.DuckDBPyConnection] | None = None


def _parser_value(query: str, argument: str) -> str:
    """Return the one value of ``query`` with ``argument`` on the shared in-memory connection."""
    global _PARSER
    with _PARSER_LOCK:
        # A forked child (Spark's Python workers) opens its own connection.
        if _PARSER is None or _PARSER[0] != os.getpid():
            _PARSER = (os.getpid(), duckdb.connect())
        return _PARSER[1].execute(query, [argument]).fetchall()[0][0]


@functools.lru_cache(maxsize=512)
def _serialize_condition(condition: str) -> str:
    """Return DuckDB's JSON syntax tree of ``select <condition>`` (an error document when it does not parse)."""
    return _parser_value("select json_serialize_sql(?)", "select " + condition)


def parse_condition(condition: str, code: str, names: Mapping[str, str]) -> dict:
    """Parse ``condition`` with DuckDB and check it against the allow-list; return its syntax tree.

    Raises StrategyRuleError naming the rule ``code`` and the offending part.
    """
    if not isinstance(condition, str) or not condition.strip():
        raise StrategyRuleError(_("Strategy rule {code}: the condition is empty; write a boolean expression such as 'true' or 'churn_risk >= churn_risk_high'.").format(code=code))
    if len(condition) > MAX_CONDITION_LENGTH:
        raise StrategyRuleError(
            _("Strategy rule {code}: the condition has {length} characters, more than the maximum {maximum}; split it into several rules.").format(
                code=code, length=len(condition), maximum=MAX_CONDITION_LENGTH
            )
        )

    document = json.loads(_serialize_condition(condition))
    if document.get("error") and document.get("error_message", "").startswith("Only SELECT statements"):
        # DuckDB's text for a condition followed by another statement.
        raise StrategyRuleError(
            _("Strategy rule {code}: the condition contains more than one statement; write one expression without ';'.").format(
                code=code
            )
        )
    if document.get("error"):
        raise StrategyRuleError(
            _("Strategy rule {code}: the condition is not a valid SQL expression ({error}); fix its syntax.").format(
                code=code, error=document.get("error_message", "")
            )
        )

    statements = document["statements"]
    node = statements[0]["node"] if len(statements) == 1 else {}
    is_bare_expression = (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list", [])) == 1
        and node.get("from_table", {}).get("type") == "EMPTY"
        and not node.get("modifiers")
        and not node.get("group_expressions")
        and not node.get("cte_map", {}).get("map")
        and all(node.get(key) is None for key in _EMPTY_SELECT_KEYS)
    )
    if not is_bare_expression:
        raise StrategyRuleError(
            _("Strategy rule {code}: the condition must be one expression, without FROM, WHERE, GROUP BY or another statement.").format(code=code)
        )

    expression = node["select_list"][0]
    _check_node(expression, code, names, parent_class=None)
    return expression


def _check_node(node: dict, code: str, names: Mapping[str, str], parent_class: str | None) -> None:
    """Walk one syntax-tree node and its children; raise on any kind, function or name not allowed."""
    kind = node.get("class")
    if kind is not None:
        _check_expression(node, kind, code, names, parent_class)
    for key, value in node.items():
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, dict):
                _check_node(child, code, names, kind if kind is not None else parent_class)


def _check_expression(node: dict, kind: str, code: str, names: Mapping[str, str], parent_class: str | None) -> None:
    if kind not in _ALLOWED_CLASSES or (kind == "TYPE" and parent_class != "CAST"):
        raise _unsafe(code, rule_constructs.construct_label(kind))
    if kind == "OPERATOR" and node.get("type") not in _ALLOWED_OPERATORS:
        raise _unsafe(code, rule_constructs.construct_label(str(node.get("type"))))
    if kind == "FUNCTION":
        function_name = str(node.get("function_name", "")).lower()
        if (
            function_name not in _ALLOWED_FUNCTIONS
            or node.get("schema")
            or node.get("catalog")
            or node.get("filter") is not None
            or node.get("distinct")
            or node.get("order_bys", {}).get("orders")
        ):
            if not rule_constructs.is_operator_symbol(function_name):
                raise _unsafe(code, _("function {name}").format(name=function_name))
            if not _is_duckdb_function(function_name):
                # DuckDB's parser accepts any run of operator characters, such
                # as >==, and only binding would find that no such operator exists.
                raise _invalid_operator(code, function_name)
            raise _unsafe(code, _("operator {name}").format(name=function_name))
    if kind == "TYPE" and str(node.get("type_name", "")).upper() not in _ALLOWED_CAST_TYPES:
        raise _unsafe(code, _("cast to {type}").format(type=node.get("type_name")))
    if kind == "COLUMN_REF":
        column = node.get("column_names", [])
        if len(column) != 1 or column[0].lower() not in names:
            raise _unknown_name(code, column, names)


def _unknown_name(code: str, column: Sequence[str], names: Mapping[str, str]) -> StrategyRuleError:
    """Return the error for a name a condition may not use, with the closest allowed name when one is close."""
    thresholds = ", ".join(THRESHOLD_QUANTILES)
    # For a qualified name such as f.recency_days the last part is what the
    # analyst meant, and may well be allowed as it is.
    last = column[-1] if column else ""
    suggestion = last.lower() if last.lower() in names else closest_name(last, names)
    if suggestion is None:
        return StrategyRuleError(
            _("Strategy rule {code}: unknown name {name}; a condition may use the predictions, the thresholds ({thresholds}) and the customer features.").format(
                code=code, name=".".join(column), thresholds=thresholds
            )
        )
    return StrategyRuleError(
        _("Strategy rule {code}: unknown name {name}; did you mean {suggestion}? A condition may use the predictions, the thresholds ({thresholds}) and the customer features.").format(
            code=code, name=".".join(column), suggestion=suggestion, thresholds=thresholds
        )
    )


@functools.lru_cache(maxsize=64)
def _is_duckdb_function(name: str) -> bool:
    """Return whether DuckDB has a function or operator called ``name``."""
    return bool(_parser_value("select count(*) > 0 from duckdb_functions() where function_name = ?", name))


def _invalid_operator(code: str, operator: str) -> StrategyRuleError:
    """Return the error for an operator DuckDB does not have, with the valid operator closest to it."""
    suggestion = rule_constructs.closest_operator(operator)
    if suggestion is None:
        return StrategyRuleError(
            _("Strategy rule {code}: invalid operator {operator}; compare with =, <>, <, <=, > or >= and compute with +, -, *, /, // or %.").format(
                code=code, operator=operator
            )
        )
    return StrategyRuleError(
        _("Strategy rule {code}: invalid operator {operator}; did you mean {suggestion}? Compare with =, <>, <, <=, > or >= and compute with +, -, *, /, // or %.").format(
            code=code, operator=operator, suggestion=suggestion
        )
    )


def _unsafe(code: str, what: str) -> StrategyRuleError:
    allowed = ", ".join(sorted(name for name in _ALLOWED_FUNCTIONS if name.isidentifier()))
    return StrategyRuleError(
        _("Strategy rule {code}: {what} is not allowed in a condition; use comparisons, and/or/not, in, between, case, arithmetic and the functions {allowed}.").format(
            code=code, what=what, allowed=allowed
        )
    )


def validate_rules(rules: Sequence[StrategyRule], feature_names: Iterable[str] = FEATURE_NAMES) -> None:
    """Check codes, priorities and every condition; raise StrategyRuleError on the first problem."""
    if not rules:
        raise StrategyRuleError(_("mkt.strategy_rules is empty; restore the defaults with 'duckmkt strategy reset DB'."))
    seen_codes: set[str] = set()
    seen_priorities: dict[int, str] = {}
    names = allowed_names(feature_names)
    checker = _type_checker(names)
    try:
        for rule in rules:
            _validate_rule(rule, names, seen_codes, seen_priorities, checker)
    finally:
        checker.close()


def _validate_rule(
    rule: StrategyRule,
    names: Mapping[str, str],
    seen_codes: set[str],
    seen_priorities: dict[int, str],
    checker: duckdb.DuckDBPyConnection,
) -> None:
    """Check one rule's code, channel, action, priority and condition against the rules seen before it."""
    for column, value in (("code", rule.code), ("channel", rule.channel), ("action", rule.action)):
        if not isinstance(value, str) or not _CODE_PATTERN.match(value):
            raise StrategyRuleError(
                _("Strategy rule {code}: {column} {value!r} is invalid; use lowercase letters, digits and '_', starting with a letter.").format(
                    code=rule.code, column=column, value=value
                )
            )
    if rule.code in seen_codes:
        raise StrategyRuleError(_("Strategy rule code {code} appears twice; codes must be unique.").format(code=rule.code))
    if rule.priority in seen_priorities:
        # Name both rules: the one being edited may be either of them.
        raise StrategyRuleError(
            _("Strategy rules {first} and {second} both have priority {priority}; give each rule its own priority.").format(
                first=seen_priorities[rule.priority], second=rule.code, priority=rule.priority
            )
        )
    seen_codes.add(rule.code)
    seen_priorities[rule.priority] = rule.code
    parse_condition(rule.condition, rule.code, names)
    _check_condition_type(rule, names, checker)


def _type_checker(names: Mapping[str, str]) -> duckdb.DuckDBPyConnection:
    """Return an in-memory database with the table ``sample``: one row of typed predictions and features."""
    predictions = ", ".join(f"'{name}': 0.5::double" for name in PREDICTION_NAMES)
    features = ", ".join(f"'{name}': 1.0::double" for name, kind in names.items() if kind == "feature")
    checker = duckdb.connect()
    # A table, not constants, so that DuckDB casts and evaluates a condition
    # as it does on a scoring batch.
    checker.execute(f"create table sample as select {{{predictions}}} as scores, {{{features}}} as features")
    return checker


def _check_condition_type(rule: StrategyRule, names: Mapping[str, str], checker: duckdb.DuckDBPyConnection) -> None:
    """Evaluate the condition once on the row of ``checker``'s ``sample``; raise unless it gives a boolean.

    The syntax check alone lets through conditions that only fail when
    DuckDB binds them, such as a comparison of a number with 'abc', or that
    are not true or false at all, such as a bare ``purchase_prob``.
    """
    sample_thresholds = {name: 0.5 for name, kind in names.items() if kind == "threshold"}
    condition_sql = compile_condition(rule.condition, rule.code, sample_thresholds, names)
    try:
        kind = checker.execute(f"select typeof({condition_sql}), ({condition_sql}) from sample").fetchall()[0][0]
    except duckdb.Error as error:
        raise StrategyRuleError(
            _("Strategy rule {code}: DuckDB cannot evaluate the condition ({error}); compare the predictions and features with numbers.").format(
                code=rule.code, error=str(error).splitlines()[0]
            )
        ) from error
    if kind not in ("BOOLEAN", '"NULL"', "NULL"):
        raise StrategyRuleError(
            _("Strategy rule {code}: the condition gives a {type}, not true or false; write a comparison such as 'purchase_prob >= purchase_prob_median'.").format(
                code=rule.code, type=kind
            )
        )


# --- Compilation ------------------------------------------------------------


def compile_condition(condition: str, code: str, thresholds: Mapping[str, float], names: Mapping[str, str]) -> str:
    """Return ``condition`` as SQL over the structs ``scores`` and ``features`` with thresholds inlined."""
    expression = parse_condition(condition, code, names)
    missing = sorted(
        name for name in rule_arrays.column_names(expression) if names[name] == "threshold" and name not in thresholds
    )
    if missing:
        raise StrategyRuleError(
            _("Strategy rule {code}: the model has no threshold {names}; retrain it or edit the rule.").format(
                code=code, names=", ".join(missing)
            )
        )

    _qualify_columns(expression, names)
    select = {"error": False, "statements": [{"node": {
        "type": "SELECT_NODE", "modifiers": [], "cte_map": {"map": []}, "select_list": [expression],
        "from_table": {"type": "EMPTY", "alias": "", "sample": None, "query_location": 0, "query_location_length": 0},
        "where_clause": None, "group_expressions": [], "group_sets": [], "aggregate_handling": "STANDARD_HANDLING",
        "having": None, "sample": None, "qualify": None,
    }, "named_param_map": []}]}
    text = _parser_value("select json_deserialize_sql(?)", json.dumps(select))
    sql = re.sub(r"^SELECT\s+", "", text)

    # Thresholds were renamed to __threshold__.<name>; write each as a double
    # literal that round-trips exactly (repr gives the shortest exact form).
    def literal(match: re.Match) -> str:
        return f"CAST('{float(thresholds[match.group(1)])!r}' AS DOUBLE)"

    return re.sub(r'"?__threshold__"?\."?([a-z_][a-z0-9_]*)"?', literal, sql)


def _qualify_columns(node, names: Mapping[str, str]) -> None:
    """Rewrite bare names in place: predictions to scores.x, features to features.x, thresholds to a marker."""
    if isinstance(node, dict):
        if node.get("class") == "COLUMN_REF":
            name = node["column_names"][0].lower()
            prefix = {"prediction": "scores", "feature": "features", "threshold": "__threshold__"}[names[name]]
            node["column_names"] = [prefix, name]
        for value in node.values():
            _qualify_columns(value, names)
    elif isinstance(node, list):
        for value in node:
            _qualify_columns(value, names)


def compile_case_sql(
    rules: Sequence[StrategyRule], thresholds: Mapping[str, float], feature_names: Iterable[str] = FEATURE_NAMES
) -> str:
    """Return the rules as one ``case when ... end`` expression over ``scores`` and ``features``."""
    validate_rules(rules, feature_names)
    names = allowed_names(feature_names)
    branches = [
        f"    when ({compile_condition(rule.condition, rule.code, thresholds, names)}) then '{rule.code}'"
        for rule in sorted(rules, key=lambda rule: rule.priority)
    ]
    return "case\n" + "\n".join(branches) + "\n    else null\nend"


def macro_sql(case_sql: str, fingerprint: str, model_version: str) -> str:
    """Return the ``create macro`` statement of ``mkt.assign_strategy`` around ``case_sql``."""
    # The messages are translated once, here, so the macro raises them in the
    # language that was active when it was compiled.
    stale = _sql_string(
        _("mkt.strategy_rules changed after mkt.assign_strategy was compiled; run 'duckmkt strategy compile DB' to compile the edited rules.")
    )
    other_model = _sql_string(
        _("mkt.assign_strategy was compiled with the thresholds of model version {version}, but the scores come from another version; run 'duckmkt strategy compile DB --model VERSION'.").format(
            version=model_version
        )
    )
    return (
        f"create or replace macro {MACRO_NAME}(scores, features) as\n"
        "case\n"
        f"    when (select fingerprint from mkt.strategy_rules_fingerprint) <> {_sql_string(fingerprint)} then error({stale})\n"
        f"    when scores.model_version is distinct from {_sql_string(model_version)} and scores.model_version is not null then error({other_model})\n"
        f"    else {case_sql}\n"
        "end"
    )


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- Reading and writing the rules -------------------------------------------


def read_rules(con: duckdb.DuckDBPyConnection) -> list[StrategyRule]:
    """Return the rows of ``mkt.strategy_rules`` in priority order."""
    columns = ", ".join(RULE_COLUMNS)
    rows = con.execute(f"select {columns} from mkt.strategy_rules order by priority").fetchall()
    return [StrategyRule(*row) for row in rows]


def read_default_rules(con: duckdb.DuckDBPyConnection) -> list[StrategyRule]:
    """Return the shipped default rules from ``mkt.default_strategy_rules``."""
    columns = ", ".join(RULE_COLUMNS)
    rows = con.execute(f"select {columns} from mkt.default_strategy_rules order by priority").fetchall()
    return [StrategyRule(*row) for row in rows]


def rules_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Return the md5 fingerprint of the rules that ``mkt.assign_strategy`` checks."""
    return con.execute("select fingerprint from mkt.strategy_rules_fingerprint").fetchall()[0][0]


def read_thresholds(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, float], str] | None:
    """Return (thresholds, model_version) stored in ``mkt.strategy_thresholds``, or None when empty."""
    rows = con.execute("select name, value, model_version from mkt.strategy_thresholds").fetchall()
    if not rows:
        return None
    return {name: value for name, value, _version in rows}, rows[0][2]


def compile_rules(
    con: duckdb.DuckDBPyConnection,
    thresholds: Mapping[str, float] | None = None,
    model_version: str | None = None,
    feature_names: Iterable[str] = FEATURE_NAMES,
) -> str:
    """Validate ``mkt.strategy_rules`` and install ``mkt.assign_strategy``; return the CASE expression.

    With ``thresholds`` and ``model_version`` they are first stored in
    ``mkt.strategy_thresholds``; without them the stored ones are used.
    Raises StrategyRuleError when a rule is invalid or no thresholds exist.
    """
    if thresholds is None:
        stored = read_thresholds(con)
        if stored is None:
            raise StrategyRuleError(
                _("mkt.strategy_thresholds is empty; score once with 'duckmkt score DB' or pass --model to take them from a trained model.")
            )
        thresholds, model_version = stored
    rules = read_rules(con)
    case_sql = compile_case_sql(rules, thresholds, feature_names)

    con.execute("begin transaction")
    try:
        con.execute("delete from mkt.strategy_thresholds")
        con.executemany(
            "insert into mkt.strategy_thresholds values (?, ?, ?, ?, ?)",
            [
                (name, *THRESHOLD_QUANTILES.get(name, ("unknown", float("nan"))), float(value), str(model_version))
                for name, value in thresholds.items()
            ],
        )
        con.execute(macro_sql(case_sql, rules_fingerprint(con), str(model_version)))
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    logger.info("Compiled %d strategy rules into %s for model version %s", len(rules), MACRO_NAME, model_version)
    return case_sql


def set_rule(con: duckdb.DuckDBPyConnection, code: str, **changes: object) -> StrategyRule:
    """Update the rule ``code`` (or insert it when new) and validate the result; return the rule.

    ``changes`` are column names of ``mkt.strategy_rules``. A new rule needs
    every column except ``label_zh`` (which defaults to ``label_en``) and
    ``rationale`` (which defaults to an empty string). The table is left
    unchanged when validation fails.
    """
    unknown = sorted(set(changes) - set(RULE_COLUMNS))
    if unknown:
        suggestions = [name for name in (closest_name(column, RULE_COLUMNS) for column in unknown) if name is not None]
        if suggestions:
            raise StrategyRuleError(
                _("Unknown strategy rule column {columns}; did you mean {suggestions}? The columns are {allowed}.").format(
                    columns=", ".join(unknown), suggestions=", ".join(suggestions), allowed=", ".join(RULE_COLUMNS)
                )
            )
        raise StrategyRuleError(
            _("Unknown strategy rule column {columns}; use {allowed}.").format(
                columns=", ".join(unknown), allowed=", ".join(RULE_COLUMNS)
            )
        )
    changes = {key: value for key, value in changes.items() if value is not None}
    rules = read_rules(con)
    existing = next((rule for rule in rules if rule.code == code), None)
    if existing is not None:
        updated = replace(existing, **changes)
    else:
        required = [column for column in ("priority", "condition", "label_en", "channel", "action") if column not in changes]
        if required:
            suggestion = closest_name(code, [rule.code for rule in rules])
            raise IncompleteRuleError(incomplete_rule_message(code, required, suggestion), code, required, suggestion)
        values = {"label_zh": changes.get("label_en"), "rationale": "", **changes, "code": code}
        updated = StrategyRule(**values)
    new_rules = [updated if rule.code == code else rule for rule in rules]
    if existing is None:
        new_rules.append(updated)
    validate_rules(new_rules)

    with_placeholders = ", ".join("?" for _column in RULE_COLUMNS)
    con.execute("begin transaction")
    try:
        con.execute("delete from mkt.strategy_rules where code = ?", [code])
        con.execute(f"insert into mkt.strategy_rules ({', '.join(RULE_COLUMNS)}) values ({with_placeholders})", [getattr(updated, column) for column in RULE_COLUMNS])
        con.execute("commit")
    except duckdb.ConstraintException as error:
        con.execute("rollback")
        raise StrategyRuleError(_("Strategy rule {code} conflicts with another rule: {error}").format(code=code, error=error)) from error
    except BaseException:
        con.execute("rollback")
        raise
    return updated


def incomplete_rule_message(code: str, required: Sequence[str], suggestion: str | None) -> str:
    """Return the error for a new rule ``code`` without ``required``, which are column or option names."""
    if suggestion is not None:
        return _("Strategy rule {code} does not exist; did you mean {suggestion}? A new rule needs {columns}.").format(
            code=code, suggestion=suggestion, columns=", ".join(required)
        )
    return _("Strategy rule {code} does not exist; a new rule needs {columns}.").format(code=code, columns=", ".join(required))


def delete_rule(con: duckdb.DuckDBPyConnection, code: str) -> None:
    """Delete the rule ``code``; raise StrategyRuleError when it does not exist."""
    codes = [rule.code for rule in read_rules(con)]
    if code not in codes:
        suggestion = closest_name(code, codes)
        if suggestion is not None:
            raise StrategyRuleError(
                _("Strategy rule {code} does not exist; did you mean {suggestion}? List the rules with 'duckmkt strategy show DB'.").format(
                    code=code, suggestion=suggestion
                )
            )
        raise StrategyRuleError(_("Strategy rule {code} does not exist; list the rules with 'duckmkt strategy show DB'.").format(code=code))
    con.execute("delete from mkt.strategy_rules where code = ?", [code])


def reset_rules(con: duckdb.DuckDBPyConnection) -> list[StrategyRule]:
    """Replace every rule with the shipped defaults; return them."""
    con.execute("begin transaction")
    try:
        con.execute("delete from mkt.strategy_rules")
        con.execute("insert into mkt.strategy_rules select * from mkt.default_strategy_rules")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return read_rules(con)


# --- Evaluation inside score_customer -----------------------------------------


class RuleEvaluator:
    """Evaluate ``mkt.strategy_rules`` on Arrow batches inside ``score_customer``.

    Each batch reads the rules' fingerprint through a cursor of the scoring
    connection (one small query), unless the query passed in the one read
    when it was planned, and recompiles the rules only when it changed. The compiled rules
    run on NumPy arrays (``rule_arrays``) when every construct and value has
    the same meaning there as in DuckDB; otherwise DuckDB evaluates the CASE
    expression of ``mkt.assign_strategy`` on the batch. Either way the
    result is the macro's. A lock serializes the cursor because DuckDB may
    call the UDF from several threads and a cursor is not safe to share.

    NOTE: the cursor sees committed rules only, so a rule edited inside an
    open transaction on the scoring connection is not used before COMMIT.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, thresholds: Mapping[str, float], feature_names: Iterable[str]):
        self._cursor = con.cursor()
        self._thresholds = dict(thresholds)
        self._feature_names = tuple(feature_names)
        self._lock = threading.Lock()
        self._compiled: _CompiledRules | None = None
        self._has_table = self._rules_table_exists()
        if not self._has_table:
            logger.warning(_("mkt.strategy_rules is missing (database opened read-only before it was installed); using the default rules"))

    def _rules_table_exists(self) -> bool:
        rows = self._cursor.execute(
            "select count(*) from duckdb_tables() where schema_name = 'mkt' and table_name = 'strategy_rules'"
        ).fetchall()
        return rows[0][0] > 0

    @property
    def reads_rules_table(self) -> bool:
        """Whether the rules come from ``mkt.strategy_rules`` (False: the shipped defaults)."""
        return self._has_table

    def _fingerprint(self) -> str:
        return rules_fingerprint(self._cursor) if self._has_table else ""

    def fingerprint(self) -> str:
        """Return the fingerprint of the committed rules (empty without a rules table)."""
        with self._lock:
            return self._fingerprint()

    def _current(self, expected: str | None = None) -> _CompiledRules:
        """Return the compiled rules, recompiling them when their fingerprint changed.

        ``expected`` is the fingerprint read when the calling query was
        planned; when the compiled rules have it, no query is needed.
        """
        if expected is not None and self._compiled is not None and self._compiled.fingerprint == expected:
            return self._compiled
        fingerprint = self._fingerprint()
        if self._compiled is None or self._compiled.fingerprint != fingerprint:
            rules = read_rules(self._cursor) if self._has_table else _default_rules_without_database()
            self._compiled = _CompiledRules.build(fingerprint, rules, self._thresholds, self._feature_names)
            logger.debug("Compiled strategy rules for score_customer:\n%s", self._compiled.case_sql)
        return self._compiled

    def case_sql(self) -> str:
        """Return the CASE expression of the current rules."""
        with self._lock:
            return self._current().case_sql

    def evaluate(
        self, predictions: Mapping[str, np.ndarray], features: pa.StructArray, *, fingerprint: str | None = None, dictionary: bool = False
    ) -> pa.Array:
        """Return the strategy code of each row of a batch of predictions and feature structs.

        ``fingerprint``: the rules' fingerprint read when the calling query was planned, or None.
        ``dictionary``: return the codes as indices into the array of rule codes
        where the rules run in NumPy, which DuckDB reads without a string per row.
        """
        with self._lock:
            compiled = self._current(fingerprint)
        if compiled.first_true is not None:
            try:
                chosen = compiled.first_true(_rule_columns(predictions, features, compiled.first_true.used_names), len(features))
                indices = pa.array(chosen, mask=chosen < 0)
                if dictionary:
                    return pa.DictionaryArray.from_arrays(indices, compiled.codes)
                return compiled.codes.take(indices)
            except rule_arrays.Unsupported:
                pass
        return self._evaluate_in_duckdb(compiled.case_sql, predictions, features)

    def _evaluate_in_duckdb(self, case_sql: str, predictions: Mapping[str, np.ndarray], features: pa.StructArray) -> pa.Array:
        scores = pa.StructArray.from_arrays([pa.array(predictions[name]) for name in PREDICTION_NAMES], names=list(PREDICTION_NAMES))
        batch = pa.table({"scores": scores, "features": features})
        with self._lock:
            self._cursor.register("strategy_batch", batch)
            try:
                result = self._cursor.sql(f"select ({case_sql}) as strategy from strategy_batch").to_arrow_table()
            except duckdb.BinderException as error:
                raise StrategyRuleError(
                    _("A strategy rule uses a feature the feature struct lacks ({error}); pass a row of mkt.customer_features or edit the rule.").format(
                        error=error
                    )
                ) from error
            finally:
                self._cursor.unregister("strategy_batch")
        return result.column("strategy").combine_chunks().cast(pa.string())


@dataclass(frozen=True)
class _CompiledRules:
    """One version of the rules: its fingerprint, CASE expression and NumPy form (None when DuckDB must run it)."""

    fingerprint: str
    case_sql: str
    codes: pa.Array
    first_true: Callable | None

    @classmethod
    def build(
        cls, fingerprint: str, rules: Sequence[StrategyRule], thresholds: Mapping[str, float], feature_names: Iterable[str]
    ) -> _CompiledRules:
        case_sql = compile_case_sql(rules, thresholds, feature_names)
        ordered = sorted(rules, key=lambda rule: rule.priority)
        names = allowed_names(feature_names)
        try:
            conditions = [parse_condition(rule.condition, rule.code, names) for rule in ordered]
            first_true = rule_arrays.compile_rules(conditions, thresholds, names)
        except rule_arrays.Unsupported as reason:
            logger.debug("Strategy rules run in DuckDB: %s", reason)
            first_true = None
        codes = pa.array([rule.code for rule in ordered], type=pa.string())
        return cls(fingerprint, case_sql, codes, first_true)


def _rule_columns(predictions: Mapping[str, np.ndarray], features: pa.StructArray, used: Sequence[str]) -> dict:
    """Return (float64 values, NULL mask) of each name the rules use, or raise Unsupported."""
    columns = {}
    present = {features.type.field(index).name: index for index in range(features.type.num_fields)}
    for name in used:
        if name in predictions:
            values = predictions[name]
            columns[name] = (values, np.zeros(len(values), dtype=bool))
            continue
        if name not in present:
            # DuckDB raises the error that names the missing field.
            raise rule_arrays.Unsupported(name)
        field = features.field(present[name])
        if not pa.types.is_floating(field.type):
            raise rule_arrays.Unsupported(f"{name} of type {field.type}")
        if field.null_count == 0:
            # The usual column: read in place, no mask to build.
            values = field.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            columns[name] = (values, np.zeros(len(values), dtype=bool))
            continue
        nulls = field.is_null().to_numpy(zero_copy_only=False)
        values = field.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        columns[name] = (values, nulls)
    return columns


def _default_rules_without_database() -> list[StrategyRule]:
    """Read the default rules by running the shipped SQL file in a private in-memory database."""
    from duckmkt.sql_views import sql_dir

    private = duckdb.connect()
    try:
        private.execute("create schema mkt")
        private.execute((sql_dir() / "actions" / "default_strategy_rules.sql").read_text(encoding="utf-8"))
        return read_default_rules(private)
    finally:
        private.close()


def compile_rules_if_writable(
    con: duckdb.DuckDBPyConnection,
    thresholds: Mapping[str, float],
    model_version: str,
    feature_names: Iterable[str] = FEATURE_NAMES,
) -> bool:
    """Compile the rules with a model's thresholds unless ``con`` is read-only; return whether it did.

    On a read-only connection the rules are still validated, so an unsafe
    rule fails here rather than in the first scoring batch.
    """
    try:
        compile_rules(con, thresholds, model_version, feature_names)
        return True
    except (duckdb.InvalidInputException, duckdb.CatalogException, duckdb.TransactionException) as error:
        # Raised for a read-only file or a database opened before the rules
        # table existed; score_customer still evaluates the rules itself.
        logger.debug("Did not compile %s: %s", MACRO_NAME, error)
        return False

