"""DuckDB-to-Spark SQL translation without a SparkSession: objects, rules and errors."""

from __future__ import annotations

from datetime import date

import pytest

pytest.importorskip("sqlglot")

from duckmkt.spark.translate import SparkTranslationError, SqlObject, read_objects, spark_view_name, translate  # noqa: E402


def _view(body: str, name: str = "mkt.example", parameters: tuple[str, ...] = ()) -> SqlObject:
    kind = "macro" if parameters else "view"
    return SqlObject(name, kind, "features", parameters, body, path=None)


def test_read_objects_finds_macro_parameters():
    objects = read_objects()

    assert objects["mkt.customer_features_at"].kind == "macro"
    assert objects["mkt.customer_features_at"].parameters == ("cutoff", "staged_lines")
    assert objects["mkt.customer_features_at"].required == ("cutoff",)
    assert objects["mkt.customer_features_at"].defaults == (("staged_lines", "mkt.stg_order_lines"),)
    assert objects["mkt.customer_labels_at"].required == ("cutoff", "horizon_days", "churn_horizon_days")
    assert objects["mkt.int_orders"].kind == "view"
    assert objects["raw.order_lines"].kind == "table"


def test_translate_every_feature_object():
    objects = read_objects()
    calls = []

    def resolve(name, values):
        calls.append((name, values))
        return "bound_view"

    sql = translate(objects["mkt.customer_features_at"], {"cutoff": date(2011, 9, 1)}, resolve)

    assert sorted(calls) == [
        ("mkt.event_features_at", (date(2011, 9, 1),)),
        ("mkt.first_product_views_at", (date(2011, 9, 1),)),
    ]
    assert "bound_view" in sql
    assert "mkt__stg_order_lines" in sql
    assert "MATERIALIZED" not in sql.upper()
    assert "UNIX_MICROS" in sql
    for name in ("mkt.stg_order_lines", "mkt.int_sales", "mkt.int_returns", "mkt.stg_events"):
        assert translate(objects[name])
    # mkt.int_orders calls the macro mkt.int_orders_from with the staging view.
    calls.clear()
    assert "bound_view" in translate(objects["mkt.int_orders"], resolve_call=resolve)
    assert calls == [("mkt.int_orders_from", ("mkt.stg_order_lines",))]


def test_translate_data_quality_names_view_and_construct():
    objects = read_objects()

    with pytest.raises(SparkTranslationError) as raised:
        translate(objects["mkt.data_quality"])

    message = str(raised.value)
    assert "mkt.data_quality" in message
    assert "COLUMNS(...)" in message or "UNPIVOT" in message


def test_translate_customer_features_names_subquery_argument():
    objects = read_objects()

    with pytest.raises(SparkTranslationError) as raised:
        translate(objects["mkt.customer_features"], resolve_call=lambda name, values: "unused")

    message = str(raised.value)
    assert "mkt.customer_features" in message
    assert "mkt.customer_features_at" in message
    assert "non-constant argument" in message


def test_translate_macro_missing_parameter():
    with pytest.raises(SparkTranslationError, match=r"mkt\.example takes the parameters \(cutoff\)"):
        translate(_view("select cutoff", parameters=("cutoff",)), {})


def test_translate_binds_date_parameter():
    sql = translate(_view("select cutoff::timestamp as at", parameters=("cutoff",)), {"cutoff": date(2011, 1, 2)})

    assert "CAST('2011-01-02' AS DATE)" in sql


def test_translate_regexp_replace_backreference():
    sql = translate(_view(r"select regexp_replace(x, '^([0-9]+)\.0+$', '\1') as y from t"))

    assert "'$1'" in sql


def test_translate_regexp_replace_first_match_unanchored():
    with pytest.raises(SparkTranslationError, match="without 'g'"):
        translate(_view("select regexp_replace(x, 'a', 'b') as y from t"))


def test_translate_division_casts_to_double():
    sql = translate(_view("select a / b as q from t"))

    assert "CAST(a AS DOUBLE) / CAST(b AS DOUBLE)" in sql


def test_translate_windowed_avg_unsupported():
    with pytest.raises(SparkTranslationError, match=r"avg\(\.\.\.\) over"):
        translate(_view("select avg(a) over (partition by b) as m from t"))


def test_spark_view_name_schema_prefix():
    assert spark_view_name("mkt.int_orders") == "mkt__int_orders"


def test_translate_query_table_default_reads_staging_view():
    objects = read_objects()

    sql = translate(objects["mkt.int_orders_from"], {})

    assert "mkt__stg_order_lines" in sql
    assert "query_table" not in sql.lower()


def test_references_follow_query_table_default():
    from duckmkt.spark.translate import references

    objects = read_objects()

    assert "mkt.stg_order_lines" in references(objects["mkt.int_orders_from"])
    assert "mkt.stg_order_lines" in references(objects["mkt.customer_features_at"])


def test_translate_query_table_bound_to_other_table():
    macro = SqlObject(
        "mkt.example", "macro", "features", ("cutoff", "staged_lines"), "select * from query_table(staged_lines)",
        path=None, defaults=(("staged_lines", "mkt.stg_order_lines"),),
    )

    sql = translate(macro, {"cutoff": date(2011, 1, 2), "staged_lines": "mkt.other_lines"})

    assert "mkt__other_lines" in sql
    assert "mkt__stg_order_lines" not in sql


def test_translate_query_table_without_schema_names_construct():
    with pytest.raises(SparkTranslationError, match=r"mkt\.example.*query_table"):
        translate(_view("select * from query_table('lines')"))
