"""Hostile names from users: mapping columns, model names, label queries and strategy conditions.

Each case checks that nothing runs and nothing is written outside the
folders the test set up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from duckmkt.database import connect_database
from duckmkt.errors import DuckmktError, ModelError, StrategyRuleError
from duckmkt.loading import load_file, read_mapping
from duckmkt.registry import check_model_name, save_model
from duckmkt.scoring import resolve_model_dir
from duckmkt.training.response import relation_sql

HOSTILE = 'x"; drop table raw.order_lines; --'
HOSTILE_NAMES = [
    HOSTILE,
    "x'; drop table raw.order_lines; --",
    "../../etc",
    "..",
    ".hidden",
    "a/b",
    "a\\b",
    "name with space",
    "",
    "x" * 101,
    "null\0byte",
]


def order_line_count(con) -> int:
    return con.execute("select count(*) from raw.order_lines").fetchall()[0][0]


def test_load_file_hostile_mapping_column(tmp_path):
    header = ["Customer", HOSTILE, "Date", "Stock", "Qty", "Price"]
    csv_path = tmp_path / "orders.csv"
    with csv_path.open("w", encoding="utf-8") as file:
        file.write(",".join('"' + name.replace('"', '""') + '"' for name in header) + "\n")
        file.write("17850,536365,2010-12-01 08:26:00,85123A,6,2.55\n")
    mapping_path = tmp_path / "mapping.toml"
    mapping_path.write_text(
        'kind = "orders"\n[columns]\n'
        'customer_id = "Customer"\n'
        f"order_id = '{HOSTILE}'\n"
        'ordered_at = "Date"\nproduct_id = "Stock"\nquantity = "Qty"\nunit_price = "Price"\n',
        encoding="utf-8",
    )
    con = connect_database(tmp_path / "shop.duckdb")

    report = load_file(con, csv_path, mapping=read_mapping(mapping_path))

    assert report.n_rows_loaded == 1
    assert con.execute("select order_id from raw.order_lines").fetchall() == [("536365",)]
    con.close()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_check_model_name_hostile_rejected(name):
    with pytest.raises(ModelError, match="Invalid model name"):
        check_model_name(name)


@pytest.mark.parametrize("name", ["customer", "response", "churn-v2", "A_1"])
def test_check_model_name_plain_accepted(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_save_model_hostile_name_writes_nothing(tmp_path, name):
    models_dir = tmp_path / "deep" / "models"
    models_dir.mkdir(parents=True)

    with pytest.raises(ModelError):
        save_model(models_dir, name, b"onnx", {"feature_names": ["x"], "input_name": "f", "output_names": ["y"]}, {})
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "deep", models_dir]


@pytest.mark.parametrize("name", ["../../etc", HOSTILE])
def test_resolve_model_dir_hostile_name_rejected(tmp_path, name):
    with pytest.raises(ModelError, match="Invalid model name"):
        resolve_model_dir(models_dir=tmp_path, name=name)


def test_train_command_hostile_name_fails_before_training(small_db_copy, tmp_path):
    models_dir = tmp_path / "models"
    completed = subprocess.run(
        [sys.executable, "-m", "duckmkt", "train", str(small_db_copy), "--name", "../../etc", "--models-dir", str(models_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert completed.returncode == 1
    assert "Invalid model name" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not models_dir.exists()
    assert not (tmp_path.parent / "etc").exists()


@pytest.mark.parametrize(
    "source",
    [
        "select 1 as customer_id, 1 as label; drop table raw.order_lines",
        "select 1 as customer_id, 1 as label) select 1; drop table raw.order_lines; with t as (select 1",
        "copy raw.order_lines to '/tmp/duckmkt-leak.csv'",
        "attach '/tmp/duckmkt-other.duckdb' as other",
        "drop table raw.order_lines",
        "install httpfs",
        HOSTILE,
    ],
)
def test_relation_sql_hostile_query_rejected(source):
    with pytest.raises(DuckmktError):
        relation_sql(source)


def test_relation_sql_trailing_comment_kept_inside(small_db_copy):
    con = duckdb.connect(str(small_db_copy))
    before = order_line_count(con)
    query = relation_sql("select customer_id, 1 as label from raw.order_lines limit 1 -- a note")

    rows = con.execute(f"with label_rows as ({query}) select count(*) from label_rows").fetchall()

    assert rows == [(1,)]
    assert order_line_count(con) == before
    con.close()


def test_train_response_hostile_label_runs_nothing(small_db_copy, tmp_path):
    from duckmkt.training.response import train_response

    con = duckdb.connect(str(small_db_copy))
    before = order_line_count(con)
    label = "select customer_id, 1 as label from raw.order_lines) select 1; drop table raw.order_lines; with t as (select 1"

    with pytest.raises(DuckmktError):
        train_response(con, label=label, models_dir=tmp_path / "models")

    assert order_line_count(con) == before
    assert not (tmp_path / "models").exists()
    con.close()


@pytest.mark.parametrize(
    "condition",
    [
        HOSTILE,
        "true); drop table raw.order_lines; --",
        "scores.churn_risk > 0.5 or (select count(*) from raw.order_lines) > 0",
        "read_csv('/etc/passwd') is not null",
    ],
)
def test_strategy_condition_hostile_rejected(condition):
    from duckmkt.strategy import StrategyRule, validate_rules

    rule = StrategyRule(
        priority=1, code="x", condition=condition, label_en="x", label_zh="x", channel="x", action="x", rationale="x"
    )
    with pytest.raises(StrategyRuleError):
        validate_rules([rule])


def test_compile_quotes_model_version(small_db_copy, tmp_path, trained_model_dir):
    import shutil

    from duckmkt import registry
    from duckmkt.compile import compile_model

    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    metadata = registry.load_metadata(model_dir)
    metadata["version"] = "v'; drop table raw.order_lines; --"
    registry.write_metadata(model_dir, metadata)
    con = connect_database(small_db_copy)
    before = order_line_count(con)

    compile_model(con, model_dir)

    versions = con.execute("select distinct model_version from mkt.customer_predictions").fetchall()
    assert versions == [(metadata["version"],)]
    assert order_line_count(con) == before
    con.close()


def test_no_file_written_outside(tmp_path):
    # The hostile paths above never leave tmp_path; /tmp/duckmkt-leak.csv is
    # the target the rejected COPY would have written.
    assert not Path("/tmp/duckmkt-leak.csv").exists()
    assert not Path("/tmp/duckmkt-other.duckdb").exists()
