"""The ONNX model compiled into DuckDB SQL: parity with the UDF, errors, other clients."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from importlib import util
from pathlib import Path

import duckdb
import numpy as np
import onnx
import pytest

from duckmkt.compile import PREDICTIONS_VIEW, compile_model
from duckmkt.database import connect_database
from duckmkt.errors import ModelError
from duckmkt.registry import sha256_file, write_metadata
from duckmkt.scoring import register

# Probabilities are compared in absolute terms, amounts as |difference| /
# max(1, |amount|): ONNX Runtime computes in float32 (about 7 significant
# digits) and the SQL in DOUBLE, so a spend of 10,000 cannot agree to 1e-5
# absolute, but both agree to 1e-5 of its size.
TOLERANCE = 1e-5
HEADS = ("purchase_prob", "expected_spend", "churn_risk")

UDF_QUERY = """
    select customer_id, s.purchase_prob, s.expected_spend, s.churn_risk, s.strategy
    from (select customer_id, score_customer(f) as s from mkt.customer_features as f)
    order by customer_id
"""
SQL_QUERY = f"""
    select customer_id, purchase_prob, expected_spend, churn_risk, strategy
    from {PREDICTIONS_VIEW}
    order by customer_id
"""


def differences(sql_rows, udf_rows) -> dict[str, np.ndarray]:
    """Return the per-row difference of each head, absolute or relative above 1 as TOLERANCE describes."""
    sql = np.array([row[1:4] for row in sql_rows], dtype=np.float64)
    udf = np.array([row[1:4] for row in udf_rows], dtype=np.float64)
    difference = np.abs(sql - udf)
    difference[:, 1] /= np.maximum(1.0, np.abs(udf[:, 1]))
    return dict(zip(HEADS, difference.T))


def strategy_mismatches(sql_rows, udf_rows, thresholds: dict) -> list[int]:
    """Return indexes of rows whose strategies differ although no prediction lies within TOLERANCE of a threshold."""
    mismatched = []
    for index, (sql_row, udf_row) in enumerate(zip(sql_rows, udf_rows)):
        if sql_row[4] == udf_row[4]:
            continue
        near = any(
            abs(value - threshold) <= TOLERANCE * max(1.0, abs(threshold))
            for value in udf_row[1:4]
            for threshold in thresholds.values()
        )
        if not near:
            mismatched.append(index)
    return mismatched


@pytest.fixture(scope="module")
def online_retail_compiled(tmp_path_factory, online_retail_db, trained_model_dir) -> Path:
    """A copy of the full Online Retail database with the small model compiled into it."""
    path = tmp_path_factory.mktemp("compiled") / "online_retail.duckdb"
    shutil.copy(online_retail_db, path)
    con = connect_database(path)
    try:
        compile_model(con, trained_model_dir)
    finally:
        con.close()
    return path


def test_compile_parity_online_retail(online_retail_compiled, trained_model_dir):
    con = connect_database(online_retail_compiled)
    try:
        scorer = register(con, trained_model_dir)
        # Materialized once, so both paths read identical feature values.
        con.execute("create temp table features as select * from mkt.customer_features")
        udf_rows = con.execute(UDF_QUERY.replace("mkt.customer_features", "features")).fetchall()
        sql_rows = con.execute(
            "select customer_id, purchase_prob, expected_spend, churn_risk, strategy "
            "from mkt.score_customers('features') order by customer_id"
        ).fetchall()
    finally:
        con.close()

    assert len(udf_rows) > 4000
    assert [row[0] for row in sql_rows] == [row[0] for row in udf_rows]
    for head, difference in differences(sql_rows, udf_rows).items():
        assert difference.max() <= TOLERANCE, head
    assert strategy_mismatches(sql_rows, udf_rows, scorer.metadata["strategy_thresholds"]) == []


def test_compile_null_features_match_udf(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        compile_model(con, trained_model_dir)
        register(con, trained_model_dir)
        # One customer with every feature NULL and one with +-inf, which the
        # model imputes with the training median.
        con.execute(
            """
            create temp table odd_features as
            select * replace ('none' as customer_id) from mkt.customer_features limit 1
            """
        )
        described = con.execute("describe odd_features").fetchall()
        columns = [row[0] for row in described if row[0] not in ("customer_id", "cutoff_date")]
        doubles = [row[0] for row in described if row[1] == "DOUBLE"]
        con.execute("update odd_features set " + ", ".join(f"{name} = null" for name in columns))
        con.execute("insert into odd_features select * replace ('inf' as customer_id) from odd_features")
        con.execute(
            "update odd_features set "
            + ", ".join(f"{name} = 'inf'::double" for name in doubles)
            + " where customer_id = 'inf'"
        )
        udf_rows = con.execute(UDF_QUERY.replace("mkt.customer_features", "odd_features")).fetchall()
        sql_rows = con.execute(
            "select customer_id, purchase_prob, expected_spend, churn_risk, strategy "
            "from mkt.score_customers('odd_features') order by customer_id"
        ).fetchall()
    finally:
        con.close()

    assert len(sql_rows) == 2
    for head, difference in differences(sql_rows, udf_rows).items():
        assert difference.max() <= TOLERANCE, head
    assert [row[4] for row in sql_rows] == [row[4] for row in udf_rows]


def test_compile_records_model_info(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        compiled = compile_model(con, trained_model_dir)
        name, version, operators = con.execute("select name, version, operators from mkt.compiled_model").fetchall()[0]
    finally:
        con.close()

    metadata = json.loads((trained_model_dir / "metadata.json").read_text())
    assert version == metadata["version"]
    assert name == metadata["name"]
    assert set(operators) == set(compiled.operators)
    assert "MatMul" in operators


def test_compile_unsupported_operator_named(tmp_path, small_db_copy, trained_model_dir):
    model_dir = tmp_path / "erf_model"
    shutil.copytree(trained_model_dir, model_dir)
    model = onnx.load(str(model_dir / "model.onnx"))
    relu = next(node for node in model.graph.node if node.op_type == "Relu")
    relu.op_type = "Erf"
    onnx.save(model, str(model_dir / "model.onnx"))
    metadata = json.loads((model_dir / "metadata.json").read_text())
    metadata["onnx_sha256"] = sha256_file(model_dir / "model.onnx")
    write_metadata(model_dir, metadata)

    con = connect_database(small_db_copy)
    try:
        with pytest.raises(ModelError, match="Erf"):
            compile_model(con, model_dir)
        objects = con.execute(
            "select count(*) from duckdb_functions() where schema_name = 'mkt' and function_name = 'score_customers'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert objects == 0


def test_compile_edited_rules_raise_until_recompiled(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        compile_model(con, trained_model_dir)
        con.execute("update mkt.strategy_rules set condition = 'purchase_prob >= 0.99' where code = 'retention'")
        # The strategy column is read, so the check in it runs.
        with pytest.raises(duckdb.Error, match="duckmkt compile"):
            con.execute(f"select count(strategy) from {PREDICTIONS_VIEW}").fetchall()
        compile_model(con, trained_model_dir)
        count = con.execute(f"select count(strategy) from {PREDICTIONS_VIEW}").fetchall()[0][0]
    finally:
        con.close()
    assert count > 0


def duckdb_cli_binary() -> Path:
    """Return the DuckDB CLI executable of the duckdb-cli package."""
    spec = util.find_spec("duckdb_cli")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("The duckdb-cli package is missing; install the test extra: pip install -e '.[test]'")
    return Path(next(iter(spec.submodule_search_locations))) / "duckdb"


def test_duckdb_cli_scores_match_udf(small_db_copy, trained_model_dir):
    con = connect_database(small_db_copy)
    try:
        compile_model(con, trained_model_dir)
        scorer = register(con, trained_model_dir)
        udf_rows = con.execute(UDF_QUERY).fetchall()
    finally:
        con.close()

    # A separate process with an empty environment: no Python, no duckmkt.
    completed = subprocess.run(
        [str(duckdb_cli_binary()), "-readonly", "-csv", str(small_db_copy), "-c", SQL_QUERY],
        env={},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    reader = csv.DictReader(io.StringIO(completed.stdout))
    cli_rows = [
        (row["customer_id"], float(row["purchase_prob"]), float(row["expected_spend"]), float(row["churn_risk"]), row["strategy"])
        for row in reader
    ]

    assert len(cli_rows) == len(udf_rows)
    assert [row[0] for row in cli_rows] == [row[0] for row in udf_rows]
    for head, difference in differences(cli_rows, udf_rows).items():
        assert difference.max() <= TOLERANCE, head
    assert strategy_mismatches(cli_rows, udf_rows, scorer.metadata["strategy_thresholds"]) == []


def test_new_database_readable_by_duckdb_cli(tmp_path):
    path = tmp_path / "new.duckdb"
    connect_database(path).close()

    completed = subprocess.run(
        [str(duckdb_cli_binary()), "-readonly", "-csv", str(path), "-c", "select count(*) as n from duckdb_views() where schema_name = 'mkt'"],
        env={},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert int(completed.stdout.splitlines()[1]) > 0
