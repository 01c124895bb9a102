"""The NumPy evaluation of strategy rules gives exactly what DuckDB's CASE expression gives."""

from __future__ import annotations

import random

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from duckmkt import rule_arrays, strategy
from duckmkt.errors import StrategyRuleError
from duckmkt.features import FEATURE_NAMES

THRESHOLDS = {
    "churn_risk_high": 0.61,
    "monetary_value_median": 674.49,
    "expected_spend_median": 120.0,
    "expected_spend_top": 1450.25,
    "purchase_prob_median": 0.42,
    "purchase_prob_low": 0.18,
}
# Features with NULLs (mean_days_between_orders for one-order customers) and without.
NUMBERS = ("purchase_prob", "expected_spend", "churn_risk", "recency_days", "monetary_value", "mean_days_between_orders", *THRESHOLDS)
CONSTANTS = ("0", "1", "90", "0.5", "2.5", "1e3", "-3", "null", "0.125")


def random_number(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.45:
        return rng.choice(NUMBERS)
    if roll < 0.65:
        return rng.choice(CONSTANTS)
    if roll < 0.85:
        return f"({random_number(rng, depth + 1)} {rng.choice('+-*/')} {random_number(rng, depth + 1)})"
    if roll < 0.92:
        return f"coalesce({random_number(rng, depth + 1)}, {random_number(rng, depth + 1)})"
    return f"-{random_number(rng, depth + 1)}"


def random_condition(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth < 2 and roll < 0.3:
        return f"({random_condition(rng, depth + 1)} {rng.choice(['and', 'or'])} {random_condition(rng, depth + 1)})"
    if depth < 2 and roll < 0.38:
        return f"not ({random_condition(rng, depth + 1)})"
    if roll < 0.46:
        return f"{random_number(rng, 1)} is {rng.choice(['', 'not '])}null"
    if roll < 0.54:
        return f"{random_number(rng, 1)} between {random_number(rng, 2)} and {random_number(rng, 2)}"
    if roll < 0.6:
        return f"{random_number(rng, 1)} {rng.choice(['in', 'not in'])} ({rng.choice(CONSTANTS)}, {rng.choice(CONSTANTS)})"
    if roll < 0.64:
        return rng.choice(["true", "false", "null"])
    return f"{random_number(rng, 1)} {rng.choice(['<', '<=', '>', '>=', '=', '<>'])} {random_number(rng, 1)}"


@pytest.fixture(scope="module")
def batch(small_db) -> tuple[dict[str, np.ndarray], pa.StructArray]:
    """Real feature rows of the small subset, with predictions drawn around the thresholds."""
    con = duckdb.connect(str(small_db), read_only=True)
    features = con.sql("select f from mkt.customer_features f order by customer_id").to_arrow_table().column("f").combine_chunks()
    con.close()
    rng = np.random.default_rng(0)
    n_rows = len(features)
    predictions = {
        "purchase_prob": rng.uniform(0, 1, n_rows),
        "expected_spend": rng.lognormal(5, 1.5, n_rows),
        "churn_risk": rng.uniform(0, 1, n_rows),
    }
    # Some predictions sit exactly on a threshold, where < and <= differ.
    predictions["churn_risk"][::17] = THRESHOLDS["churn_risk_high"]
    predictions["purchase_prob"][::13] = THRESHOLDS["purchase_prob_median"]
    return predictions, features


def in_duckdb(case_sql: str, predictions: dict[str, np.ndarray], features: pa.StructArray) -> list:
    scores = pa.StructArray.from_arrays([pa.array(predictions[name]) for name in strategy.PREDICTION_NAMES], names=list(strategy.PREDICTION_NAMES))
    con = duckdb.connect()
    con.register("strategy_batch", pa.table({"scores": scores, "features": features}))
    rows = con.execute(f"select ({case_sql}) from strategy_batch").fetchall()
    con.close()
    return [row[0] for row in rows]


def rules_of(conditions: list[str]) -> list[strategy.StrategyRule]:
    return [
        strategy.StrategyRule(priority, f"rule_{priority}", condition, "label", "标签", "email", "send", "why")
        for priority, condition in enumerate(conditions, start=1)
    ]


def in_numpy(rules, predictions, features) -> list | None:
    """Return the codes from the NumPy path, or None when it hands the batch to DuckDB."""
    names = strategy.allowed_names(FEATURE_NAMES)
    conditions = [strategy.parse_condition(rule.condition, rule.code, names) for rule in rules]
    try:
        first_true = rule_arrays.compile_rules(conditions, THRESHOLDS, names)
        chosen = first_true(strategy._rule_columns(predictions, features, first_true.used_names), len(features))
    except rule_arrays.Unsupported:
        return None
    return [rules[index].code if index >= 0 else None for index in chosen]


def test_rule_arrays_random_rules_match_duckdb(batch):
    predictions, features = batch
    rng = random.Random(7)
    compared = 0
    for _ in range(150):
        rules = rules_of([random_condition(rng) for _ in range(rng.randint(1, 4))])
        try:
            strategy.validate_rules(rules, FEATURE_NAMES)
        except StrategyRuleError:
            # The generator can write what DuckDB's grammar rejects, such as a
            # chained comparison; validation refuses those rules anyway.
            continue
        expected = in_duckdb(strategy.compile_case_sql(rules, THRESHOLDS), predictions, features)
        got = in_numpy(rules, predictions, features)
        if got is None:
            continue
        compared += 1
        assert got == expected, [rule.condition for rule in rules]

    # Most random rule sets must take the NumPy path, or the test shows little.
    assert compared >= 100


def test_rule_arrays_default_rules_use_numpy(rules_con, batch):
    predictions, features = batch
    rules = strategy.read_rules(rules_con)

    got = in_numpy(rules, predictions, features)

    assert got is not None
    assert got == in_duckdb(strategy.compile_case_sql(rules, THRESHOLDS), predictions, features)


@pytest.mark.parametrize(
    "condition",
    [
        "abs(recency_days - 30) < 10",
        "recency_days % 7 = 0",
        "case when recency_days > 30 then churn_risk > 0.5 else false end",
        "recency_days::float > 3.1",
        "recency_days > 12345678901234567.5",
        "recency_days::varchar like '1%'",
        "(recency_days > 3) = true",
    ],
)
def test_rule_arrays_other_constructs_left_to_duckdb(condition):
    names = strategy.allowed_names(FEATURE_NAMES)
    tree = strategy.parse_condition(condition, "rule", names)

    with pytest.raises(rule_arrays.Unsupported):
        rule_arrays.compile_rules([tree], THRESHOLDS, names)


def test_rule_evaluator_nan_feature_matches_duckdb(batch):
    # DuckDB orders NaN above every number; the evaluator must not evaluate
    # it in NumPy, where NaN compares false.
    predictions, features = batch
    recency = features.field("recency_days").to_numpy(zero_copy_only=False).copy()
    recency[::5] = np.nan
    fields = [features.field(i) if features.type.field(i).name != "recency_days" else pa.array(recency) for i in range(features.type.num_fields)]
    with_nan = pa.StructArray.from_arrays(fields, names=[field.name for field in features.type])
    rules = rules_of(["recency_days > 100", "true"])

    evaluator = strategy.RuleEvaluator(duckdb.connect(), THRESHOLDS, FEATURE_NAMES)
    evaluator._compiled = strategy._CompiledRules.build("", rules, THRESHOLDS, FEATURE_NAMES)
    got = evaluator.evaluate(predictions, with_nan, fingerprint="").to_pylist()

    assert in_numpy(rules, predictions, with_nan) is None
    assert got == in_duckdb(strategy.compile_case_sql(rules, THRESHOLDS), predictions, with_nan)
    assert got[0] == "rule_1"


def test_score_customer_macro_reads_rules_once_per_query(rules_con, monkeypatch):
    # The first query compiles the rules; count the lookups of a later one.
    rules_con.execute("select count(score_customer(f).strategy) from mkt.customer_features f").fetchall()
    calls = []
    original = strategy.rules_fingerprint
    monkeypatch.setattr(strategy, "rules_fingerprint", lambda cursor: calls.append(1) or original(cursor))
    # Forty copies of each customer make several batches of 2,048 rows.
    query = "select count(score_customer(f).strategy) from mkt.customer_features f, range(40)"

    n_scored = rules_con.execute(query).fetchall()[0][0]
    on_connection = len(calls)
    rules_con.cursor().execute(query).fetchall()
    on_cursor = len(calls) - on_connection

    assert n_scored > 4 * 2048
    assert on_connection == 1
    # A cursor has no macro: the UDF looks the fingerprint up per batch.
    assert on_cursor > 1


def test_score_customer_macro_unnest_and_cursor_agree(rules_con):
    query = "select customer_id, unnest(score_customer(f)) from mkt.customer_features f order by customer_id"
    on_connection = rules_con.execute(query).fetchall()
    on_cursor = rules_con.cursor().execute(query).fetchall()

    assert len(on_connection) > 100
    # ONNX Runtime may round float32 sums differently in batches of other
    # sizes, so predictions agree to float32 precision; the rest exactly.
    for row, other in zip(on_connection, on_cursor, strict=True):
        assert row[0] == other[0]
        assert row[4:] == other[4:]
        assert row[1:4] == pytest.approx(other[1:4], rel=1e-5, abs=1e-6)


def test_score_customer_macro_sees_edit_in_next_query(rules_con):
    query = "select count(*) filter (where score_customer(f).strategy = 'no_action') from mkt.customer_features f"
    before = rules_con.execute(query).fetchall()[0][0]
    rules_con.execute("update mkt.strategy_rules set condition = 'true' where code = 'retention'")

    after = rules_con.execute(query).fetchall()[0][0]

    assert before > 0
    assert after == 0
