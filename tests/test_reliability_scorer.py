"""score_customer on bad input: NULL, NaN, infinities, extremes, wrong types and odd structs.

The cases that could take the DuckDB process down run in a subprocess whose
exit code is checked; the property-based cases call the scorer directly.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duckmkt.errors import FeatureError
from duckmkt.scoring import HEADS, Scorer

FLOAT32_MAX = float(np.finfo(np.float32).max)
# The smallest double that rounds to infinity as float32: halfway between the
# float32 maximum and the next power of two (2**128), where the tie rounds to
# the even mantissa, which is infinity.
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103

# One real customer's feature struct with recency_days replaced by a value.
ONE_CUSTOMER = (
    "select score_customer(struct_update(f, recency_days := {value})) "
    "from (select f from mkt.customer_features f order by customer_id limit 1)"
)
# Each case is a query; the subprocess runs them one after the other on one
# connection and prints each outcome as JSON.
CASES = {
    "all_null": "select score_customer(struct_pack(recency_days := null::double)) from range(1)",
    "null_struct": "select score_customer((select f from mkt.customer_features f limit 0)) from range(1)",
    "nan": ONE_CUSTOMER.format(value="'nan'::double"),
    "plus_inf": ONE_CUSTOMER.format(value="'inf'::double"),
    "minus_inf": ONE_CUSTOMER.format(value="'-inf'::double"),
    "negative": ONE_CUSTOMER.format(value="-1e9"),
    "float32_overflow": ONE_CUSTOMER.format(value="1e300"),
    "hugeint": ONE_CUSTOMER.format(value="170141183460469231731687303715884105727::hugeint"),
    "varchar_field": ONE_CUSTOMER.format(value="'ten'"),
    "list_field": ONE_CUSTOMER.format(value="[1, 2]"),
    "missing_field": "select score_customer(struct_pack(frequency := 1.0)) from range(1)",
    "not_a_struct": "select score_customer(42) from range(1)",
    "zero_rows": "select score_customer(f) from mkt.customer_features f where false",
    "million_identical": (
        "select count(*), count(distinct (score_customer(f)).purchase_prob) "
        "from (select f from mkt.customer_features f order by customer_id limit 1) cross join range(1000000)"
    ),
}


def run_cases(db, model_dir, cases: dict[str, str], feature_names: list[str]) -> tuple[int, dict, str]:
    """Run ``cases`` in a fresh Python process; return (exit code, outcomes, stderr)."""
    # A struct with every model feature, as the "all_null" case needs.
    null_struct = "struct_pack(" + ", ".join(f"{name} := null::double" for name in feature_names) + ")"
    cases = {name: sql.replace("struct_pack(recency_days := null::double)", null_struct) for name, sql in cases.items()}
    script = textwrap.dedent(
        f"""
        import json, sys
        import duckdb
        from duckmkt.scoring import register

        con = duckdb.connect({str(db)!r}, read_only=True)
        register(con, {str(model_dir)!r})
        outcomes = {{}}
        for name, sql in json.loads(sys.argv[1]).items():
            try:
                rows = con.execute(sql).fetchall()
                outcomes[name] = {{"rows": json.loads(json.dumps(rows, default=str).replace("NaN", "null"))}}
            except duckdb.Error as error:
                outcomes[name] = {{"error": type(error).__name__, "message": str(error)}}
        print(json.dumps(outcomes))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, timeout=300, check=False
    )
    outcomes = json.loads(completed.stdout.splitlines()[-1]) if completed.returncode == 0 else {}
    return completed.returncode, outcomes, completed.stderr


@pytest.fixture(scope="module")
def outcomes(small_db, trained_model_dir):
    feature_names = Scorer.load(trained_model_dir).feature_names
    code, outcomes, stderr = run_cases(small_db, trained_model_dir, CASES, feature_names)
    assert code == 0, stderr
    return outcomes


def only_score(outcome: dict) -> dict:
    assert "rows" in outcome, outcome
    [(score,)] = outcome["rows"]
    return score


@pytest.mark.parametrize("case", ["plus_inf", "minus_inf", "nan", "float32_overflow"])
def test_score_customer_nonfinite_imputed(outcomes, case):
    score = only_score(outcomes[case])

    assert "recency_days" in score["imputed_features"]
    for head in HEADS:
        assert math.isfinite(score[head]), (head, score)


def test_score_customer_negative_value_out_of_range(outcomes):
    score = only_score(outcomes["negative"])

    assert "recency_days" in score["out_of_range_features"]
    assert all(math.isfinite(score[head]) for head in HEADS)


def test_score_customer_all_null_fields_imputed(outcomes, trained_model_dir):
    metadata = Scorer.load(trained_model_dir).metadata
    used = [name for name in metadata["feature_names"] if name not in metadata.get("unused_features", [])]
    score = only_score(outcomes["all_null"])

    assert sorted(score["imputed_features"]) == sorted(used)
    assert score["strategy"]


def test_score_customer_null_struct_gives_null(outcomes):
    assert outcomes["null_struct"] == {"rows": [[None]]}


def test_score_customer_hugeint_out_of_range(outcomes):
    # 2**127 - 1 is about 1.7e38, inside the float32 range: clipped, not imputed.
    score = only_score(outcomes["hugeint"])

    assert "recency_days" in score["out_of_range_features"]
    assert all(math.isfinite(score[head]) for head in HEADS)


def test_score_customer_missing_field_named(outcomes):
    outcome = outcomes["missing_field"]

    assert outcome.get("error") == "InvalidInputException", outcome
    assert "recency_days" in outcome["message"]


@pytest.mark.parametrize("case", ["varchar_field", "list_field"])
def test_score_customer_wrong_type_names_field(outcomes, case):
    outcome = outcomes[case]

    assert outcome.get("error") == "InvalidInputException", outcome
    assert "recency_days" in outcome["message"]
    assert "must be numeric" in outcome["message"]


def test_score_customer_not_a_struct_clear_error(outcomes):
    outcome = outcomes["not_a_struct"]

    assert "error" in outcome
    assert "expects a struct of features" in outcome["message"]


def test_score_customer_zero_rows(outcomes):
    assert outcomes["zero_rows"] == {"rows": []}


def test_score_customer_million_identical_rows(outcomes):
    assert outcomes["million_identical"] == {"rows": [[1_000_000, 1]]}


@pytest.fixture(scope="module")
def scorer(trained_model_dir):
    return Scorer.load(trained_model_dir)


@pytest.fixture(scope="module")
def base_features(small_db, scorer):
    import duckdb

    con = duckdb.connect(str(small_db), read_only=True)
    try:
        columns = ", ".join(scorer.feature_names)
        rows = con.execute(f"select {columns} from mkt.customer_features order by customer_id limit 1").fetchall()
    finally:
        con.close()
    return dict(zip(scorer.feature_names, rows[0]))


def struct_of(values: dict[str, object], types: dict[str, pa.DataType] | None = None) -> pa.StructArray:
    types = types or {}
    arrays = [pa.array([value], type=types.get(name, pa.float64())) for name, value in values.items()]
    return pa.StructArray.from_arrays(arrays, names=list(values))


EXTREME_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [0.0, -0.0, 1e300, -1e300, FLOAT32_MAX, np.nextafter(FLOAT32_MAX, np.inf), FLOAT32_OVERFLOW, np.nextafter(FLOAT32_OVERFLOW, 0), 5e-324, -1.0]
    ),
    st.none(),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_score_arrow_any_float_values(scorer, base_features, data):
    metadata = scorer.metadata
    used = [name for name in scorer.feature_names if name not in metadata.get("unused_features", [])]
    changed = data.draw(st.lists(st.sampled_from(used), min_size=1, max_size=4, unique=True))
    values = dict(base_features)
    for name in changed:
        values[name] = data.draw(EXTREME_FLOATS)

    [score] = scorer.score_arrow(struct_of(values)).to_pylist()

    for head in HEADS:
        assert math.isfinite(score[head]), (head, values)
    for name in changed:
        value = values[name]
        beyond = value is None or not math.isfinite(value) or abs(value) >= FLOAT32_OVERFLOW
        assert (name in score["imputed_features"]) == beyond, (name, value, score)


def test_score_arrow_field_order_and_extra_fields(scorer, base_features):
    reference = scorer.score_arrow(struct_of(base_features)).to_pylist()
    shuffled = dict(reversed(list(base_features.items())))
    shuffled["not_a_feature"] = 7.0

    assert scorer.score_arrow(struct_of(shuffled)).to_pylist() == reference


def test_score_arrow_missing_field_named(scorer, base_features):
    values = dict(base_features)
    del values["recency_days"]

    with pytest.raises(FeatureError, match="recency_days"):
        scorer.score_arrow(struct_of(values))


@pytest.mark.parametrize(
    ("arrow_type", "value"),
    [
        (pa.int8(), 12),
        (pa.int64(), 12),
        (pa.uint64(), 12),
        (pa.float32(), 12.0),
        (pa.decimal128(38, 4), 12),
        (pa.bool_(), True),
    ],
)
def test_score_arrow_numeric_types_cast(scorer, base_features, arrow_type, value):
    as_double = dict(base_features, frequency=float(value))
    typed = dict(base_features, frequency=value)

    expected = scorer.score_arrow(struct_of(as_double)).to_pylist()
    actual = scorer.score_arrow(struct_of(typed, {"frequency": arrow_type})).to_pylist()

    assert actual == expected


def test_score_arrow_int64_beyond_float32_precision(scorer, base_features):
    # int64 values cast through float64 to float32 lose precision but stay finite.
    values = dict(base_features, frequency=2**62)
    [score] = scorer.score_arrow(struct_of(values, {"frequency": pa.int64()})).to_pylist()

    assert "frequency" not in score["imputed_features"]
    assert "frequency" in score["out_of_range_features"]
