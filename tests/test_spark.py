"""Spark backend against DuckDB on real Online Retail data, in local[2] mode.

Features and labels must be equal (``==`` on every value, NULLs in the same
places); scores equal within 1e-5, strategies and flags equal.
"""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

pytest.importorskip("pyspark")

from duckmkt import scoring  # noqa: E402
from duckmkt.spark.catalog import SparkCatalog, export_tables  # noqa: E402
from duckmkt.spark.scoring import score_features  # noqa: E402
from duckmkt.spark.translate import SparkTranslationError, SqlObject, read_objects  # noqa: E402

FEATURE_CUTOFF = date(2011, 12, 10)  # the day after the latest sale: every order counts
LABEL_CUTOFF = date(2011, 8, 1)
SCORE_FIELDS = ("purchase_prob", "expected_spend", "churn_risk")


@pytest.fixture(scope="module")
def online_retail_tables(tmp_path_factory, online_retail_db):
    folder = tmp_path_factory.mktemp("spark_tables")
    con = duckdb.connect(str(online_retail_db), read_only=True)
    try:
        export_tables(con, folder)
    finally:
        con.close()
    return folder


@pytest.fixture(scope="module")
def catalog(spark_session, online_retail_tables):
    catalog = SparkCatalog(spark_session, online_retail_tables)
    yield catalog
    catalog.uncache()


@pytest.fixture(scope="module")
def spark_features(catalog):
    frame = catalog.customer_features_at(FEATURE_CUTOFF).cache()
    yield frame
    frame.unpersist()


def _duckdb_frame(db, sql: str, params: dict | None = None) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql, params=params).pl()
    finally:
        con.close()


def _assert_frames_equal(duck: pl.DataFrame, spark: pl.DataFrame) -> None:
    duck = duck.sort("customer_id")
    spark = spark.select(duck.columns).sort("customer_id")
    assert spark.height == duck.height
    assert spark["customer_id"].to_list() == duck["customer_id"].to_list()
    for column in duck.columns:
        assert spark[column].is_null().to_list() == duck[column].is_null().to_list(), column
        assert spark[column].drop_nulls().to_list() == duck[column].drop_nulls().to_list(), column


def test_spark_features_match_duckdb_online_retail(online_retail_db, spark_features):
    duck = _duckdb_frame(
        online_retail_db, "select * from mkt.customer_features_at($cutoff::date)", {"cutoff": str(FEATURE_CUTOFF)}
    )
    spark = pl.from_arrow(spark_features.toArrow())

    assert duck.height > 4000
    assert spark.columns == duck.columns
    _assert_frames_equal(duck, spark)


def test_spark_labels_match_duckdb_online_retail(online_retail_db, catalog):
    duck = _duckdb_frame(
        online_retail_db,
        "select * from mkt.customer_labels_at($cutoff::date, 60, 120)",
        {"cutoff": str(LABEL_CUTOFF)},
    )
    spark = pl.from_arrow(catalog.customer_labels_at(LABEL_CUTOFF, 60, 120).toArrow())

    assert duck["purchased"].sum() > 0
    _assert_frames_equal(duck, spark)


def test_spark_scores_match_duckdb_online_retail(online_retail_db, spark_features, trained_model_dir):
    con = duckdb.connect(str(online_retail_db), read_only=True)
    try:
        scoring.register(con, trained_model_dir)
        duck = con.sql(
            "select customer_id, unnest(score_customer(f)) from mkt.customer_features_at($cutoff::date) as f",
            params={"cutoff": str(FEATURE_CUTOFF)},
        ).pl().sort("customer_id")
    finally:
        con.close()

    spark = pl.from_arrow(score_features(spark_features, trained_model_dir).toArrow()).sort("customer_id")

    assert spark["customer_id"].to_list() == duck["customer_id"].to_list()
    for field in SCORE_FIELDS:
        np.testing.assert_allclose(spark[field].to_numpy(), duck[field].to_numpy(), rtol=1e-5, atol=1e-5, err_msg=field)
    assert spark["strategy"].to_list() == duck["strategy"].to_list()
    assert spark["model_version"].to_list() == duck["model_version"].to_list()
    assert spark["imputed_features"].to_list() == duck["imputed_features"].to_list()
    assert set(spark["cutoff_date"].to_list()) == {FEATURE_CUTOFF}


def test_spark_scores_use_strategy_rules_table(spark_session, spark_features, trained_model_dir):
    rules = pa.table(
        {
            "priority": pa.array([10], pa.int32()),
            "code": ["everyone"],
            "condition": ["true"],
            "label_en": ["Everyone"],
            "label_zh": ["所有人"],
            "channel": ["email"],
            "action": ["newsletter"],
            "rationale": ["One rule for every customer."],
        }
    )

    scores = score_features(spark_features.limit(50), trained_model_dir, rules).toArrow()

    assert scores.num_rows == 50
    assert set(scores.column("strategy").to_pylist()) == {"everyone"}


def _rule_parity_object() -> SqlObject:
    body = """
    with inputs as (
        select * from (values
            ('17850.0', '2011-02-03 04:05:06.5', '20110203', 'Add to-cart', 'POST'),
            ('x', 'not a time', '2011-02-03', 'view', 'post office')
        ) as t (id_text, time_text, day_text, event_text, code)
    )
    select
        id_text,
        regexp_replace(id_text, '^([0-9]+)\\.0+$', '\\1') as id_clean,
        epoch(try_cast(time_text as timestamp)) as seconds,
        try_strptime(day_text, '%Y%m%d') as day_at,
        regexp_replace(lower(event_text), '[ -]+', '_', 'g') as event_type,
        regexp_full_match(code, 'POST') as is_postage,
        try_cast(time_text as timestamp) + to_days(3) as later,
        7 / 2 as ratio,
    from inputs
    """
    return SqlObject("mkt.rule_parity", "view", "staging", (), body, path=None)


def test_translation_rules_match_duckdb(spark_session):
    from duckmkt.spark.translate import translate

    sql_object = _rule_parity_object()
    duck = duckdb.sql(sql_object.body).pl().sort("id_text")
    spark = pl.from_arrow(spark_session.sql(translate(sql_object)).toArrow()).sort("id_text")

    for column in duck.columns:
        assert spark[column].to_list() == duck[column].to_list(), column


def test_catalog_reports_untranslatable_view(catalog):
    with pytest.raises(SparkTranslationError, match="mkt.data_quality"):
        catalog.view("mkt.data_quality")


def test_catalog_missing_table_names_export(spark_session, tmp_path):
    from duckmkt.errors import DataError

    with pytest.raises(DataError, match=r"was not found.*duckmkt spark-export"):
        SparkCatalog(spark_session, tmp_path).view("mkt.int_orders")


def test_read_objects_covers_every_feature_dependency():
    objects = read_objects()

    assert {"mkt.customer_features_at", "mkt.event_features_at", "mkt.int_orders"} <= set(objects)


def test_spark_training_rows_match_duckdb(spark_session, small_db, tmp_path):
    from duckmkt.spark.training import stage_training_database
    from duckmkt.training import dataset, train

    con = duckdb.connect(str(small_db), read_only=True)
    try:
        export_tables(con, tmp_path / "tables")
        window = dataset.resolve_window(con)
        expected = dataset.load_rows(con, window.validation_cutoff, window)
    finally:
        con.close()
    catalog = SparkCatalog(spark_session, tmp_path / "tables")

    staged, staged_window = stage_training_database(catalog)
    try:
        rows = dataset.load_rows(staged, window.validation_cutoff, staged_window)
        result = train(staged, models_dir=tmp_path / "models", epochs=2, seed=0)
    finally:
        staged.close()
        catalog.uncache()

    assert staged_window == window
    assert rows.customer_ids.tolist() == expected.customer_ids.tolist()
    np.testing.assert_array_equal(rows.matrix, expected.matrix)
    for label, values in expected.labels.items():
        np.testing.assert_array_equal(rows.labels[label], values, err_msg=label)
    assert result.n_validation_rows == expected.n_rows
    assert (result.model_dir / "model.onnx").is_file()
