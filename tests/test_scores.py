"""Materialized scores: mkt.customer_scores, full runs and --changed runs."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from duckmkt.database import connect_database
from duckmkt.scores import materialize_scores
from duckmkt.scoring import register


def scores_by_customer(con) -> dict[str, tuple]:
    rows = con.execute("select customer_id, input_hash, scored_at, purchase_prob from mkt.customer_scores").fetchall()
    return {row[0]: row[1:] for row in rows}


def test_materialize_scores_full_columns(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        scorer = register(con, trained_model_dir)
        run = materialize_scores(con, model_version=scorer.version)
        columns = [row[0] for row in con.execute("describe mkt.customer_scores").fetchall()]
        n_rows, n_customers, versions = con.execute(
            "select count(*), count(distinct customer_id), list(distinct model_version) from mkt.customer_scores"
        ).fetchall()[0]
        n_features = con.execute("select count(*) from mkt.customer_features").fetchall()[0][0]
    finally:
        con.close()

    assert run.full
    assert run.n_scored == n_features == n_rows == n_customers
    for column in (
        "customer_id", "purchase_prob", "expected_spend", "churn_risk", "strategy", "model_version", "input_hash",
        "rules_fingerprint", "scored_at",
    ):
        assert column in columns
    assert versions == [scorer.version]


def test_materialize_scores_changed_rescores_only_changed(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        scorer = register(con, trained_model_dir)
        materialize_scores(con, model_version=scorer.version)
        before = scores_by_customer(con)

        unchanged_run = materialize_scores(con, model_version=scorer.version, changed=True)

        # One customer returns an order line, so only that customer's features change.
        customer_id = con.execute(
            "select customer_id from mkt.customer_features where n_returns = 0 order by customer_id limit 1"
        ).fetchall()[0][0]
        con.execute(
            """
            insert into raw.order_lines by name
            select * replace ('C' || order_id as order_id, '-' || quantity as quantity, source_line + 10000000 as source_line)
            from raw.order_lines
            where customer_id = $customer_id
            limit 1
            """,
            {"customer_id": customer_id},
        )
        changed_run = materialize_scores(con, model_version=scorer.version, changed=True)
        after = scores_by_customer(con)
    finally:
        con.close()

    assert not unchanged_run.full
    assert unchanged_run.n_scored == 0
    assert not changed_run.full
    assert changed_run.n_scored == 1
    assert changed_run.n_removed == 0
    assert after[customer_id][0] != before[customer_id][0]
    assert after[customer_id][1] > before[customer_id][1]
    others = [key for key in before if key != customer_id]
    assert all(after[key] == before[key] for key in others)


def test_materialize_scores_changed_after_new_model_is_full(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        scorer = register(con, trained_model_dir)
        materialize_scores(con, model_version=scorer.version)
        # As if the table had been written by an earlier model.
        con.execute("update mkt.customer_scores set model_version = 'older-version'")
        run = materialize_scores(con, model_version=scorer.version, changed=True)
        versions = con.execute("select list(distinct model_version) from mkt.customer_scores").fetchall()[0][0]
    finally:
        con.close()
    assert run.full
    assert run.n_scored == run.n_customers
    assert versions == [scorer.version]


def test_materialize_scores_records_rules_fingerprint(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        scorer = register(con, trained_model_dir)
        materialize_scores(con, model_version=scorer.version)
        # As if an older duckmkt had written the table, without the column.
        con.execute("alter table mkt.customer_scores drop column rules_fingerprint")
        con.execute("update mkt.strategy_rules set condition = 'purchase_prob >= purchase_prob_low' where code = 'product_recommendation'")
        run = materialize_scores(con, model_version=scorer.version, changed=True)
        stored = con.execute("select list(distinct rules_fingerprint) from mkt.customer_scores").fetchall()[0][0]
        current = con.execute("select fingerprint from mkt.strategy_rules_fingerprint").fetchall()[0][0]
    finally:
        con.close()

    assert run.full
    assert run.n_scored == run.n_customers
    assert stored == [current]


def test_materialize_scores_failure_keeps_old_table(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        scorer = register(con, trained_model_dir)
        materialize_scores(con, model_version=scorer.version)
        before = scores_by_customer(con)

        def broken(structs: pa.Array) -> pa.Array:
            raise RuntimeError("model crashed")

        # register() puts a macro named score_customer in front of the UDF.
        con.execute("drop macro temp.score_customer")
        con.remove_function("score_customer")
        con.create_function("score_customer", broken, parameters=None, return_type=duckdb.sqltypes.VARCHAR, type="arrow")
        with pytest.raises(duckdb.Error):
            materialize_scores(con, model_version=scorer.version)
        after = scores_by_customer(con)
    finally:
        con.close()
    assert after == before
