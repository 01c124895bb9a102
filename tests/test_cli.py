"""The duckmkt command line through Typer's CliRunner and as a real process."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
import sys

import duckdb
import pytest
from typer.testing import CliRunner

from duckmkt.cli import activate_language
from duckmkt.commands import build_app

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def runner():
    activate_language("en")
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(build_app(), [str(arg) for arg in args])


def run_process(*args, lang: str = "en_US.UTF-8", cwd=None):
    env = {key: value for key, value in os.environ.items() if key not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    env["LANG"] = lang
    return subprocess.run(
        [sys.executable, "-m", "duckmkt", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_load_and_quality(runner, tmp_path, small_orders_csv):
    db = tmp_path / "cli.duckdb"
    loaded = invoke(runner, "load", db, small_orders_csv)
    repeated = invoke(runner, "load", db, small_orders_csv)
    quality = invoke(runner, "quality", db)

    assert loaded.exit_code == 0, loaded.output
    assert "rows read" in loaded.output
    assert "sale" in loaded.output
    assert repeated.exit_code == 0
    assert "nothing added" in repeated.output
    assert quality.exit_code == 0
    assert "exact_duplicates" in quality.output


def test_load_missing_file_is_one_error_line(runner, tmp_path):
    result = invoke(runner, "load", tmp_path / "cli.duckdb", tmp_path / "absent.csv")

    assert result.exit_code == 1
    assert "Error:" in result.output
    assert "absent.csv" in result.output
    assert "Traceback" not in result.output


def test_load_unknown_preset(runner, tmp_path, small_orders_csv):
    result = invoke(runner, "load", tmp_path / "cli.duckdb", small_orders_csv, "--preset", "nope")

    assert result.exit_code == 1
    assert "online_retail" in result.output


@pytest.mark.train
def test_train_and_score_with_defaults(runner, tmp_path, small_db_copy):
    models_dir = tmp_path / "models"
    trained = invoke(runner, "train", small_db_copy, "--models-dir", models_dir, "--epochs", 5)
    scored = invoke(runner, "score", small_db_copy, "--models-dir", models_dir)
    con = duckdb.connect(str(small_db_copy), read_only=True)
    n_scores = con.execute("select count(*) from mkt.customer_scores").fetchall()[0][0]
    n_customers = con.execute("select count(*) from mkt.customer_features").fetchall()[0][0]
    con.close()

    assert trained.exit_code == 0, trained.output
    for setting in ("horizon_days", "churn_horizon_days", "train_cutoff", "validation_cutoff"):
        assert setting in trained.output
    assert "purchase_auc" in trained.output
    assert "epoch" in trained.output.lower()
    assert len(list(models_dir.glob("customer/*/model.onnx"))) == 1
    assert scored.exit_code == 0, scored.output
    assert "score_customer(f)" in scored.output
    assert n_scores == n_customers


def test_train_rejects_bad_date(runner, small_db_copy, tmp_path):
    result = invoke(runner, "train", small_db_copy, "--models-dir", tmp_path, "--train-cutoff", "2011-13-01")

    assert result.exit_code == 1
    assert "2011-13-01" in result.output
    assert "YYYY-MM-DD" in result.output


def test_score_without_model(runner, small_db_copy, tmp_path):
    result = invoke(runner, "score", small_db_copy, "--models-dir", tmp_path / "empty")

    assert result.exit_code == 1
    assert "duckmkt train" in result.output


def test_help_in_chinese_from_locale():
    result = run_process("--help", lang="zh_CN.UTF-8")

    assert result.returncode == 0, result.stderr
    assert CJK.search(result.stdout)
    assert "选项" in result.stdout
    assert "Show this message and exit." not in result.stdout


def test_help_in_english_from_locale():
    result = run_process("--help", lang="en_US.UTF-8")

    assert result.returncode == 0, result.stderr
    assert not CJK.search(result.stdout)
    assert "Personalized marketing" in result.stdout


def test_lang_option_overrides_locale(tmp_path):
    result = run_process("--lang", "zh", "load", tmp_path / "x.duckdb", tmp_path / "absent.csv", lang="en_US.UTF-8")

    assert result.returncode == 1
    assert CJK.search(result.stderr)
    assert "absent.csv" in result.stderr


def test_error_in_english_has_no_traceback(tmp_path):
    result = run_process("load", tmp_path / "x.duckdb", tmp_path / "absent.csv")

    assert result.returncode == 1
    assert result.stderr.startswith("Error:")
    assert "Traceback" not in result.stderr


def test_quality_missing_database_is_error(runner, tmp_path):
    db = tmp_path / "nosuch.duckdb"
    result = invoke(runner, "quality", db)

    assert result.exit_code == 1
    assert "not found" in result.output
    assert not db.exists()


def test_load_missing_file_creates_no_database(runner, tmp_path):
    db = tmp_path / "cli.duckdb"
    result = invoke(runner, "load", db, tmp_path / "absent.csv")

    assert result.exit_code == 1
    assert not db.exists()


def test_database_path_is_folder(runner, tmp_path, small_orders_csv):
    result = invoke(runner, "load", tmp_path, small_orders_csv)

    assert result.exit_code == 1
    assert "is a folder" in result.output


def test_load_every_row_rejected_fails(runner, tmp_path, small_orders_csv):
    db = tmp_path / "shop.duckdb"

    result = invoke(runner, "load", db, small_orders_csv, "--date-format", "%d/%m/%Y")

    assert result.exit_code == 1
    assert "every orders row was rejected" in result.output


def test_database_path_is_data_file(runner, tmp_path, small_orders_csv):
    # With the arguments swapped, DuckDB would open the CSV file as an empty
    # in-memory database and the load would vanish.
    other = tmp_path / "other.csv"
    other.write_bytes(small_orders_csv.read_bytes())

    result = invoke(runner, "load", other, small_orders_csv)

    assert result.exit_code == 1
    assert "not a DuckDB database file" in result.output
    assert other.read_bytes() == small_orders_csv.read_bytes()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--date-format", "garbage", "strptime format"), ("--delimiter", "||", "one character")],
)
def test_load_rejects_bad_option_value(runner, tmp_path, small_orders_csv, option, value, message):
    db = tmp_path / "cli.duckdb"
    result = invoke(runner, "load", db, small_orders_csv, option, value)

    assert result.exit_code == 1
    assert value in result.output
    assert message in result.output
    assert "TypeError" not in result.output


def test_load_suggests_multi_kind_preset(runner, tmp_path):
    bank = Path(__file__).resolve().parents[2] / "shared" / "data" / "bank_marketing" / "bank-full.csv.gz"
    result = invoke(runner, "load", tmp_path / "bank.duckdb", bank)

    assert result.exit_code == 1
    assert "--preset bank_marketing" in result.output
