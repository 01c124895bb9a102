"""score_customer as a DuckDB UDF against ONNX Runtime called directly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import duckdb
import numpy as np
import onnxruntime as ort
import pytest

import duckmkt
from duckmkt import i18n
from duckmkt.errors import ModelError
from duckmkt.features import FEATURE_NAMES
from duckmkt.scores import write_customer_scores
from duckmkt.scoring import HEADS, Scorer, register, resolve_model_dir
from duckmkt.strategy import STRATEGIES, assign_strategies

SCORE_ALL = "select customer_id, score_customer(f) as score from mkt.customer_features f order by customer_id"


@pytest.fixture
def scoring_con(small_db, trained_model_dir):
    con = duckdb.connect(str(small_db), read_only=True)
    register(con, trained_model_dir)
    yield con
    con.close()


def direct_onnx(model_dir, matrix: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(list(HEADS), {"features": matrix})
    return {head: output.reshape(-1) for head, output in zip(HEADS, outputs)}


def feature_matrix(con) -> tuple[list[str], np.ndarray]:
    columns = ", ".join(FEATURE_NAMES)
    rows = con.execute(f"select customer_id, {columns} from mkt.customer_features order by customer_id").fetchall()
    ids = [row[0] for row in rows]
    matrix = np.array([[np.nan if value is None else value for value in row[1:]] for row in rows], dtype=np.float32)
    return ids, matrix


def test_score_customer_matches_onnx_runtime(scoring_con, trained_model_dir):
    ids, matrix = feature_matrix(scoring_con)
    expected = direct_onnx(trained_model_dir, matrix)
    scored = scoring_con.execute(SCORE_ALL).fetchall()

    assert [row[0] for row in scored] == ids
    for head in HEADS:
        actual = np.array([row[1][head] for row in scored])
        np.testing.assert_allclose(actual, expected[head], rtol=0, atol=1e-6, err_msg=head)


def test_score_customer_scores_every_customer(scoring_con):
    counts = scoring_con.execute(
        "select count(*), count(score_customer(f)), count(score_customer(f).strategy) from mkt.customer_features f"
    ).fetchall()[0]

    assert counts[0] > 0
    assert counts == (counts[0], counts[0], counts[0])


def test_score_customer_strategy_follows_rules(scoring_con, trained_model_dir):
    thresholds = json.loads((trained_model_dir / "metadata.json").read_text())["strategy_thresholds"]
    scored = [row[1] for row in scoring_con.execute(SCORE_ALL).fetchall()]
    monetary_value = [
        row[0] for row in scoring_con.execute("select monetary_value from mkt.customer_features order by customer_id").fetchall()
    ]
    expected = assign_strategies(
        np.array([s["purchase_prob"] for s in scored]),
        np.array([s["expected_spend"] for s in scored]),
        np.array([s["churn_risk"] for s in scored]),
        thresholds,
        np.array(monetary_value),
    )

    assert [s["strategy"] for s in scored] == expected.tolist()
    assert {s["strategy"] for s in scored} <= set(STRATEGIES)


def test_score_customer_carries_model_version(scoring_con, trained_model_dir):
    version = json.loads((trained_model_dir / "metadata.json").read_text())["version"]
    versions = scoring_con.execute("select distinct score_customer(f).model_version from mkt.customer_features f").fetchall()

    assert versions == [(version,)]


def test_score_customer_null_features(scoring_con, trained_model_dir):
    fields = ", ".join(f"'{name}': null::double" for name in FEATURE_NAMES)
    score = scoring_con.execute(f"select score_customer({{{fields}}})").fetchall()[0][0]
    expected = direct_onnx(trained_model_dir, np.full((1, len(FEATURE_NAMES)), np.nan, dtype=np.float32))

    for head in HEADS:
        assert score[head] == pytest.approx(float(expected[head][0]), abs=1e-6)


def test_score_customer_partly_null_row(scoring_con):
    scored = scoring_con.execute(
        """
        select score_customer(f)
        from (select * replace (null::double as recency_days, null::double as monetary_value)
              from mkt.customer_features) f
        """
    ).fetchall()

    assert len(scored) > 0
    assert all(row[0] is not None and row[0]["purchase_prob"] is not None for row in scored)


def test_score_customer_nonfinite_values_imputed(scoring_con, trained_model_dir):
    values = {name: "'nan'::double" for name in FEATURE_NAMES}
    values["recency_days"] = "'inf'::double"
    values["monetary_value"] = "'-inf'::double"
    fields = ", ".join(f"'{name}': {value}" for name, value in values.items())
    score = scoring_con.execute(f"select score_customer({{{fields}}})").fetchall()[0][0]
    all_missing = direct_onnx(trained_model_dir, np.full((1, len(FEATURE_NAMES)), np.nan, dtype=np.float32))

    for head in HEADS:
        assert score[head] == pytest.approx(float(all_missing[head][0]), abs=1e-6)


def test_macro_matches_plain_udf(scoring_con):
    # The connection's score_customer is a macro that casts the struct in SQL
    # and checks its type once per query. A cursor calls the UDF itself, which
    # does all of it in Python. NULL and out-of-range values fill both flag
    # lists, and a NULL struct must give NULL on both paths.
    query = """
        select customer_id, score_customer(f) as score
        from (
            select * replace (
                case when hash(customer_id) % 3 = 0 then null else recency_days end as recency_days,
                case when hash(customer_id) % 5 = 0 then monetary_value * 1000 else monetary_value end as monetary_value,
                case when hash(customer_id) % 7 = 0 then -frequency else frequency end as frequency
            )
            from mkt.customer_features
        ) f
        union all
        select 'null struct', score_customer(case when false then f end)
        from (select * from mkt.customer_features limit 1) f
        order by customer_id
    """
    through_macro = scoring_con.execute(query).fetchall()
    through_udf = scoring_con.cursor().execute(query).fetchall()

    flagged = [row for row in through_macro if row[1] and row[1]["imputed_features"] and row[1]["out_of_range_features"]]
    assert flagged, "the query should give rows with both kinds of flag"
    assert ("null struct", None) in through_macro
    assert ("null struct", None) in through_udf
    assert [row[0] for row in through_macro] == [row[0] for row in through_udf]
    for (_, macro_score), (_, udf_score) in zip(through_macro, through_udf):
        if macro_score is None or udf_score is None:
            assert macro_score is udf_score
            continue
        # Strategy, model version and both flag lists are equal. The
        # predictions may differ in the last bits, because ONNX Runtime
        # rounds differently by batch size.
        assert {k: v for k, v in macro_score.items() if k not in HEADS} == {k: v for k, v in udf_score.items() if k not in HEADS}
        for head in HEADS:
            assert macro_score[head] == pytest.approx(udf_score[head], abs=1e-6)


def test_score_customer_missing_field(scoring_con):
    with pytest.raises(duckdb.Error, match="no field recency_days"):
        scoring_con.execute(
            "select score_customer(f) from (select * exclude (recency_days) from mkt.customer_features) f"
        ).fetchall()


def test_score_customer_wrong_type_names_field(scoring_con):
    with pytest.raises(duckdb.Error, match="field frequency has type VARCHAR"):
        scoring_con.execute(
            "select score_customer(f) from (select * replace (frequency::varchar as frequency) from mkt.customer_features) f"
        ).fetchall()


def test_score_customer_not_a_struct(scoring_con):
    with pytest.raises(duckdb.Error, match="expects a struct"):
        scoring_con.execute("select score_customer(42)").fetchall()


def test_score_customer_mistyped_field_suggested(scoring_con):
    query = "select score_customer(f) from (select * rename (recency_days as recency_dys) from mkt.customer_features) f"

    with pytest.raises(duckdb.Error) as through_macro:
        scoring_con.execute(query).fetchall()
    with pytest.raises(duckdb.Error) as through_udf:
        scoring_con.cursor().execute(query).fetchall()
    for raised in (through_macro, through_udf):
        assert "no field recency_days. Its field recency_dys is not a feature; did you mean recency_days?" in str(raised.value)


# Queries that fail the type check of score_customer, and a part of the message
# each raises in English and in Chinese.
TYPE_CHECK_ERRORS = {
    "not_a_struct": (
        "select score_customer(42)",
        "expects a struct of features",
        "需要一个特征结构体",
    ),
    "text_field": (
        "select score_customer(f) from (select * replace (frequency::varchar as frequency) from mkt.customer_features) f",
        # The macro names the DuckDB type (VARCHAR), the UDF the Arrow type (string).
        "it must be numeric. Cast it, for example frequency::double.",
        "它必须是数值类型。请进行类型转换，例如 frequency::double。",
    ),
    "missing_field": (
        "select score_customer(f) from (select * exclude (recency_days) from mkt.customer_features) f",
        "the feature struct has no field recency_days",
        "特征结构体中没有字段 recency_days",
    ),
    "mistyped_field": (
        "select score_customer(f) from (select * rename (recency_days as recency_dys) from mkt.customer_features) f",
        "did you mean recency_days?",
        "是否应为 recency_days？",
    ),
}


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("case", sorted(TYPE_CHECK_ERRORS))
def test_score_customer_type_errors_in_language(small_db, trained_model_dir, language, case):
    query, english, chinese = TYPE_CHECK_ERRORS[case]
    previous = i18n.get_language()
    i18n.set_language(language)
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        register(con, trained_model_dir)
        # The temporary macro on the registering connection, then the UDF on a cursor.
        with pytest.raises(duckdb.Error) as through_macro:
            con.execute(query).fetchall()
        with pytest.raises(duckdb.Error) as through_udf:
            con.cursor().execute(query).fetchall()
    finally:
        con.close()
        i18n.set_language(previous)

    expected = chinese if language == "zh" else english
    assert expected in str(through_macro.value)
    assert expected in str(through_udf.value)


def test_score_customer_empty_table(scoring_con):
    rows = scoring_con.execute("select score_customer(f) from mkt.customer_features f where false").fetchall()

    assert rows == []


def test_score_customer_field_order_and_extras(scoring_con):
    reordered = ", ".join(reversed(FEATURE_NAMES))
    baseline = scoring_con.execute(SCORE_ALL).fetchall()
    shuffled = scoring_con.execute(
        f"""
        select customer_id, score_customer(f) as score
        from (select {reordered}, customer_id, 'extra' as note from mkt.customer_features) f
        order by customer_id
        """
    ).fetchall()

    # DuckDB may cut the two queries into different batches, and ONNX
    # Runtime's matrix kernels round differently by batch size.
    assert [row[0] for row in shuffled] == [row[0] for row in baseline]
    for (_, expected), (_, actual) in zip(baseline, shuffled):
        for head in HEADS:
            assert actual[head] == pytest.approx(expected[head], abs=1e-6)


def test_score_customer_integer_and_decimal_inputs(scoring_con):
    as_double = scoring_con.execute(SCORE_ALL).fetchall()
    as_other_types = scoring_con.execute(
        """
        select customer_id, score_customer(f) as score
        from (select * replace (frequency::integer as frequency, n_products::bigint as n_products,
                                spend_30d::decimal(18, 6) as spend_30d)
              from mkt.customer_features) f
        order by customer_id
        """
    ).fetchall()

    for (_, expected), (_, actual) in zip(as_double, as_other_types):
        assert actual["purchase_prob"] == pytest.approx(expected["purchase_prob"], abs=1e-6)


def test_score_customer_null_struct(scoring_con):
    fields = ", ".join(f"'{name}': 1.0" for name in FEATURE_NAMES)
    rows = scoring_con.execute(
        f"select score_customer(case when i = 1 then null else {{{fields}}} end) from range(3) t(i) order by i"
    ).fetchall()

    assert rows[1][0] is None
    assert rows[0][0] is not None and rows[2][0] is not None


def test_write_customer_scores(small_db_copy, trained_model_dir):
    con = duckdb.connect(str(small_db_copy))
    register(con, trained_model_dir)
    n_scored = write_customer_scores(con)
    n_customers = con.execute("select count(*) from mkt.customer_features").fetchall()[0][0]
    n_rows, n_null = con.execute(
        "select count(*), count(*) filter (where purchase_prob is null or strategy is null) from mkt.customer_scores"
    ).fetchall()[0]
    con.close()

    assert n_scored == n_customers == n_rows
    assert n_null == 0


def test_resolve_model_dir_newest_version(trained_model_dir):
    models_dir = trained_model_dir.parents[1]
    name = trained_model_dir.parent.name

    assert resolve_model_dir(models_dir=models_dir, name=name) == trained_model_dir


def test_resolve_model_dir_missing(tmp_path):
    with pytest.raises(ModelError, match="duckmkt train"):
        resolve_model_dir(models_dir=tmp_path, name="customer")


def test_tampered_model_is_rejected(tmp_path, trained_model_dir):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(trained_model_dir, copy)
    data = bytearray((copy / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(data))

    with pytest.raises(ModelError, match="sha256"):
        Scorer.load(copy)


def test_scoring_does_not_import_tensorflow(small_db, trained_model_dir):
    script = f"""
import sys, duckdb, duckmkt
con = duckdb.connect({str(small_db)!r}, read_only=True)
duckmkt.register(con, {str(trained_model_dir)!r})
rows = con.execute("select score_customer(f) from mkt.customer_features f").fetchall()
assert len(rows) > 0
loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'))
print('loaded:', loaded)
sys.exit(1 if loaded else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr


def test_connect_registers_score_customer(small_db_copy, trained_model_dir):
    con = duckmkt.connect(small_db_copy, trained_model_dir)
    n_rows = con.execute("select count(score_customer(f)) from mkt.customer_features f").fetchall()[0][0]
    con.close()

    assert n_rows > 0


def test_resolve_model_dir_from_registry_table(small_db_copy, trained_model_dir, tmp_path):
    from duckmkt import sql_views
    from duckmkt.registry import record_model

    con = duckdb.connect(str(small_db_copy))
    sql_views.install(con)
    record_model(con, trained_model_dir)
    version = trained_model_dir.name
    empty = tmp_path / "elsewhere" / "models"

    newest = resolve_model_dir(models_dir=empty, con=con)
    named = resolve_model_dir(version, models_dir=empty, con=con)
    con.close()

    assert newest == trained_model_dir
    assert named == trained_model_dir


def copy_with_spend_error(source, target, times_baseline: float) -> None:
    """Copy a trained version to ``target`` with its validation spend_mae set to a multiple of the baseline's."""
    shutil.copytree(source, target)
    metadata = json.loads((target / "metadata.json").read_text(encoding="utf-8"))
    metadata["metrics"]["spend_mae"] = metadata["baselines"]["spend_mae"] * times_baseline
    (target / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")


def test_resolve_model_dir_skips_untrained_newest(trained_model_dir, tmp_path, caplog):
    root = tmp_path / "customer"
    shutil.copytree(trained_model_dir, root / "20200101T000000Z")
    copy_with_spend_error(trained_model_dir, root / "20990101T000000Z", times_baseline=15)

    with caplog.at_level("WARNING"):
        chosen = resolve_model_dir(models_dir=tmp_path, name="customer")

    assert chosen == root / "20200101T000000Z"
    assert "Version 20990101T000000Z of model customer is not usable (spend_mae 15.0 times the baseline's" in caplog.text
    assert "so version 20200101T000000Z is used" in caplog.text


def test_resolve_model_dir_only_untrained_version_warns(trained_model_dir, tmp_path, caplog):
    root = tmp_path / "customer"
    copy_with_spend_error(trained_model_dir, root / "20990101T000000Z", times_baseline=4)

    with caplog.at_level("WARNING"):
        chosen = resolve_model_dir(models_dir=tmp_path, name="customer")

    assert chosen == root / "20990101T000000Z"
    assert "and no older version is; scoring with it anyway" in caplog.text
