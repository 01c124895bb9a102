"""The duckmkt command line through Typer's CliRunner and as a real process."""

from __future__ import annotations

import csv
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
from duckmkt.database import DatabaseLockedError, connect_database

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
    # A wide terminal keeps Rich from wrapping an error message mid-sentence.
    env["COLUMNS"] = "200"
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


def test_load_detected_preset_loads_every_part(runner, tmp_path, small_orders_csv):
    detected = tmp_path / "detected.duckdb"
    only_orders = tmp_path / "orders.duckdb"
    loaded = invoke(runner, "load", detected, small_orders_csv)
    loaded_orders = invoke(runner, "load", only_orders, small_orders_csv, "--kind", "orders")

    assert loaded.exit_code == 0, loaded.output
    assert "match the preset online_retail" in loaded.output
    assert loaded_orders.exit_code == 0, loaded_orders.output
    counts = {}
    for db in (detected, only_orders):
        con = duckdb.connect(str(db), read_only=True)
        counts[db] = con.execute("select (select count(*) from raw.order_lines), (select count(*) from raw.products)").fetchall()[0]
        con.close()
    assert counts[detected][0] == counts[only_orders][0] > 0
    # The Online Retail preset also loads the product catalogue; --kind orders does not.
    assert counts[detected][1] > 0
    assert counts[only_orders][1] == 0


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
    listed = invoke(runner, "models", "list", small_db_copy)
    assert listed.exit_code == 0, listed.output
    assert "customer model" in listed.output
    assert "None" not in listed.output


def test_train_rejects_bad_date(runner, small_db_copy, tmp_path):
    result = invoke(runner, "train", small_db_copy, "--models-dir", tmp_path, "--train-cutoff", "2011-13-01")

    assert result.exit_code == 1
    assert "2011-13-01" in result.output
    assert "YYYY-MM-DD" in result.output


def test_score_without_model(runner, small_db_copy, tmp_path):
    result = invoke(runner, "score", small_db_copy, "--models-dir", tmp_path / "empty")

    assert result.exit_code == 1
    assert "duckmkt train" in result.output


@pytest.fixture
def recorded_db(small_db_copy, trained_model_dir):
    """The small database with the trained model recorded in mkt.models, as 'duckmkt train' leaves it."""
    from duckmkt.registry import record_model

    con = connect_database(small_db_copy)
    record_model(con, trained_model_dir)
    con.close()
    return small_db_copy


@pytest.mark.parametrize(
    ("language", "used", "note"),
    [
        ("en", "Scoring with model customer version {version} from {folder}.", "{models_dir} has no version {version} of model customer"),
        ("zh", "使用 {folder} 中的模型 customer 版本 {version} 打分。", "{models_dir} 中没有模型 customer 的版本 {version}"),
    ],
)
def test_score_mistyped_models_dir_names_folder(recorded_db, trained_model_dir, tmp_path, language, used, note):
    # The model is found through mkt.models, so the typo must show in the output.
    missing = tmp_path / "no_such_folder"
    version = trained_model_dir.name
    activate_language(language)
    try:
        result = CliRunner().invoke(build_app(), ["score", str(recorded_db), "--models-dir", str(missing)])
    finally:
        activate_language("en")

    assert result.exit_code == 0, result.output
    assert used.format(version=version, folder=trained_model_dir.resolve()) in result.output
    assert note.format(models_dir=missing, version=version) in result.output


def test_score_models_dir_folder_without_note(runner, recorded_db, trained_model_dir):
    models_dir = trained_model_dir.parent.parent
    result = invoke(runner, "score", recorded_db, "--models-dir", models_dir)

    assert result.exit_code == 0, result.output
    assert f"from {trained_model_dir.absolute()}." in result.output
    assert "has no version" not in result.output


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


@pytest.mark.parametrize("lang", ["en_US.UTF-8", "zh_CN.UTF-8"])
def test_help_flags_without_value_type(lang):
    root = run_process("--help", lang=lang)
    load = run_process("load", "--help", lang=lang)

    assert root.returncode == 0, root.stderr
    assert load.returncode == 0, load.stderr
    for output in (root.stdout, load.stdout):
        assert "<bool>" not in output
        assert re.search(r"--help +\S", output)
    assert re.search(r"--debug +\S", root.stdout)
    assert re.search(r"--replace +\S", load.stdout)
    # Options that take a value keep their type.
    assert re.search(r"--lang +<str>", root.stdout)
    assert re.search(r"--id-key-file +<path>", load.stdout)


# Usage errors that Click raises while parsing: arguments, then the English
# and the Chinese message.
CLICK_ERRORS = [
    (["score", "x.duckdb", "--limit", "abc"], "Invalid value for '--limit': 'abc' is not a whole number.", "'--limit' 的值无效：'abc' 不是整数。"),
    (["explain", "x.duckdb", "--top", "0"], "Invalid value for '--top': 0 is less than the minimum, 1.", "'--top' 的值无效：0 小于最小值 1。"),
    (["target", "x.duckdb", "--budget", "abc", "--cost-per-contact", "1"], "'abc' is not a number.", "'abc' 不是数字。"),
    (["strategy", "set"], "Missing argument 'db'.", "缺少参数 'db'。"),
    (["target", "x.duckdb", "--budget", "1"], "Missing option '--cost-per-contact'.", "缺少选项 '--cost-per-contact'。"),
    (["score", "x.duckdb", "--nme", "x"], "No such option: --nme. Did you mean --name", "没有此选项：--nme。是否应为 --name"),
    (["score", "x.duckdb", "--nothing-like-it"], "No such option: --nothing-like-it", "没有此选项：--nothing-like-it"),
    (["score", "x.duckdb", "--model"], "Option '--model' requires a value.", "选项 '--model' 需要一个值。"),
    (["score", "x.duckdb", "extra"], "Got unexpected extra arguments: extra.", "多余的参数：extra。"),
    (["scor"], "No such command 'scor'. Did you mean 'score'?", "没有名为 'scor' 的命令。是否应为 'score'？"),
    (["models", "lst"], "No such command 'lst'. Did you mean 'list'?", "没有名为 'lst' 的命令。是否应为 'list'？"),
]


@pytest.mark.parametrize(("arguments", "english", "chinese"), CLICK_ERRORS)
def test_click_usage_error_in_english(arguments, english, chinese):
    result = run_process(*arguments, lang="en_US.UTF-8")

    assert result.returncode == 2, result.stderr
    assert english in result.stderr
    assert "Usage: duckmkt" in result.stderr
    assert "for help." in result.stderr
    assert not CJK.search(result.stderr)


@pytest.mark.parametrize(("arguments", "english", "chinese"), CLICK_ERRORS)
def test_click_usage_error_in_chinese(arguments, english, chinese):
    result = run_process(*arguments, lang="zh_CN.UTF-8")

    assert result.returncode == 2, result.stderr
    assert chinese in result.stderr
    assert "用法：duckmkt" in result.stderr
    assert "查看帮助" in result.stderr
    assert "Usage:" not in result.stderr
    assert english not in result.stderr


def test_lang_option_overrides_locale(tmp_path):
    result = run_process("--lang", "zh", "load", tmp_path / "x.duckdb", tmp_path / "absent.csv", lang="en_US.UTF-8")

    assert result.returncode == 1
    assert CJK.search(result.stderr)
    assert "absent.csv" in result.stderr


@pytest.mark.parametrize("option", [["--lang", "zh"], ["--lang=zh"]])
def test_lang_option_after_command(tmp_path, option):
    result = run_process("load", tmp_path / "x.duckdb", tmp_path / "absent.csv", *option, lang="en_US.UTF-8")

    assert result.returncode == 1
    assert "No such option" not in result.stderr
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


RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_load_wrong_date_order_fails(runner, tmp_path):
    orders = tmp_path / "dayfirst.csv"
    orders.write_text(
        RETAIL_HEADER
        + "536365,85123A,LANTERN,6,01/12/2010 08:26,2.55,17850,United Kingdom\n"
        + "536366,71053,HEART,6,20/12/2010 09:00,3.39,17851,United Kingdom\n"
    )
    db = tmp_path / "shop.duckdb"

    result = invoke(runner, "load", db, orders, "--date-format", "month-first")

    assert result.exit_code == 1
    assert "InvoiceDate" in result.output
    assert "20/12/2010 09:00" in result.output
    assert "--date-format day-first" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()


def test_load_replace_reloads_file(runner, tmp_path):
    # Every date reads both ways, so month-first loads without an error.
    orders = tmp_path / "ambiguous.csv"
    orders.write_text(
        RETAIL_HEADER
        + "536365,85123A,LANTERN,6,01/12/2010 08:26,2.55,17850,United Kingdom\n"
        + "536366,71053,HEART,6,02/12/2010 09:00,3.39,17851,United Kingdom\n"
        + "536367,71054,CANDLE,6,yesterday,1.00,17852,United Kingdom\n"
    )
    db = tmp_path / "shop.duckdb"

    wrong = invoke(runner, "load", db, orders, "--date-format", "month-first")
    repeated = invoke(runner, "load", db, orders, "--date-format", "day-first")
    replaced = invoke(runner, "load", db, orders, "--date-format", "day-first", "--replace")

    assert wrong.exit_code == 0, wrong.output
    assert repeated.exit_code == 0, repeated.output
    assert "nothing added" in repeated.output
    assert "--replace" in repeated.output
    assert replaced.exit_code == 0, replaced.output
    assert "Replaced the earlier load" in replaced.output
    con = duckdb.connect(str(db), read_only=True)
    try:
        dates = [row[0] for row in con.execute("select ordered_at from raw.order_lines order by 1").fetchall()]
        n_rejected = con.execute("select count(*) from raw.rejected_rows").fetchall()[0][0]
        n_loads = con.execute("select count(*) from raw.load_log where kind = 'orders'").fetchall()[0][0]
    finally:
        con.close()
    assert dates == ["2010-12-01 08:26:00", "2010-12-02 09:00:00"]
    assert n_rejected == 1
    assert n_loads == 1


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


@pytest.fixture
def lock_holder(small_db_copy):
    """A second Python process that holds the write lock on a copy of the small database."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(300)",
            str(small_db_copy),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    yield small_db_copy, holder.pid
    holder.kill()
    holder.wait(timeout=30)


@pytest.mark.parametrize("command", ["quality", "load", "score", "models list"])
def test_locked_database_is_one_error(runner, lock_holder, small_orders_csv, command):
    db, pid = lock_holder
    arguments = [*command.split(), db] + ([small_orders_csv] if command == "load" else [])

    result = invoke(runner, *arguments)

    assert result.exit_code == 1
    assert f"Database {db} is locked" in result.output
    assert "close that program" in result.output
    assert f"held by process {pid}" in result.output
    assert "Could not set lock" not in result.output
    assert "IO Error" not in result.output


def test_locked_database_in_chinese(lock_holder):
    db, _pid = lock_holder

    result = run_process("quality", db, lang="zh_CN.UTF-8")

    assert result.returncode == 1
    assert result.stderr.startswith("错误：")
    assert str(db) in result.stderr
    assert "。 " not in result.stderr
    assert "Could not set lock" not in result.stderr
    assert "Traceback" not in result.stderr


def test_locked_database_demo_keeps_file(runner, lock_holder, tmp_path):
    db, _pid = lock_holder
    size = db.stat().st_size

    result = invoke(runner, "demo", "--db", db, "--models-dir", tmp_path / "models")

    assert result.exit_code == 1
    assert "is locked" in result.output
    assert db.stat().st_size == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("%Q", "%Q is not a strptime directive"),
        ("%d/%-Q/%Y", "%-Q is not a strptime directive"),
        ("%d/%m/%Y%", "% is not a strptime directive"),
        ("%d/%m/%d", "more than once"),
        ("%Y-%m-%d %H:%M:%S.%n", "write %f in its place"),
    ],
)
def test_load_rejects_invalid_date_format(runner, tmp_path, small_orders_csv, value, message):
    db = tmp_path / "cli.duckdb"

    result = invoke(runner, "load", db, small_orders_csv, "--date-format", value)

    assert result.exit_code == 1
    assert repr(value) in result.output
    assert message in result.output
    assert "rows read" not in result.output
    assert not db.exists()


def test_load_accepts_duckdb_only_directives(runner, tmp_path, small_orders_csv):
    # %-m, %-d and %T are DuckDB strptime directives that Python's strptime lacks.
    db = tmp_path / "cli.duckdb"

    result = invoke(runner, "load", db, small_orders_csv, "--date-format", "%Y-%-m-%-d %T")

    assert result.exit_code == 0, result.output
    assert "invalid_date" not in result.output
    with duckdb.connect(str(db), read_only=True) as con:
        [(n_lines, first_order)] = con.execute("select count(*), min(ordered_at) from raw.order_lines").fetchall()
        [(n_rows, first_in_file)] = con.execute(
            "select count(*), min(strptime(InvoiceDate, '%Y-%m-%d %H:%M:%S')) from read_csv(?, all_varchar = true)",
            [str(small_orders_csv)],
        ).fetchall()
    assert n_lines == n_rows
    assert first_order == str(first_in_file)


def test_load_every_row_rejected_removes_new_database(runner, tmp_path, small_orders_csv):
    db = tmp_path / "shop.duckdb"

    result = invoke(runner, "load", db, small_orders_csv, "--date-format", "%d/%m/%Y")

    assert result.exit_code == 1
    assert "was removed again" in result.output
    assert "Rejected as invalid_date" in result.output
    assert "mkt.rejected_rows" not in result.output
    assert not db.exists()
    assert not Path(f"{db}.wal").exists()


def test_load_unreadable_file_removes_new_database(runner, tmp_path):
    db = tmp_path / "shop.duckdb"
    unreadable = tmp_path / "orders.csv.gz"
    unreadable.write_text("InvoiceNo,InvoiceDate\n1,2011-01-01\n")

    result = invoke(runner, "load", db, unreadable)

    assert result.exit_code == 1
    assert result.output.startswith("Error:")
    assert not db.exists()
    assert not Path(f"{db}.wal").exists()


def test_load_every_row_rejected_keeps_existing_database(runner, tmp_path, small_db_copy, small_orders_csv):
    # The first 100 lines, so the file differs from the one already loaded.
    head = tmp_path / "head.csv"
    head.write_text("".join(small_orders_csv.read_text().splitlines(keepends=True)[:101]))

    result = invoke(runner, "load", small_db_copy, head, "--date-format", "%d/%m/%Y")

    assert result.exit_code == 1
    assert "see mkt.rejected_rows" in result.output
    assert small_db_copy.exists()
    with duckdb.connect(str(small_db_copy), read_only=True) as con:
        [(n_lines,)] = con.execute("select count(*) from raw.order_lines").fetchall()
        [(n_rejected,)] = con.execute("select count(*) from raw.rejected_rows where reason = 'invalid_date'").fetchall()
    assert n_lines > 0
    assert n_rejected > 0


def test_load_unreadable_file_keeps_existing_database(runner, tmp_path, small_db_copy):
    unreadable = tmp_path / "orders.csv.gz"
    unreadable.write_text("InvoiceNo,InvoiceDate\n1,2011-01-01\n")

    result = invoke(runner, "load", small_db_copy, unreadable)

    assert result.exit_code == 1
    assert small_db_copy.exists()
    with duckdb.connect(str(small_db_copy), read_only=True) as con:
        [(n_lines,)] = con.execute("select count(*) from raw.order_lines").fetchall()
    assert n_lines > 0


def test_locked_database_read_only_open(lock_holder):
    db, pid = lock_holder

    with pytest.raises(DatabaseLockedError) as raised:
        connect_database(db, read_only=True)

    assert f"Database {db} is locked" in str(raised.value)
    assert "open for writing" in str(raised.value)
    assert f"held by process {pid}" in str(raised.value)


def test_quality_report_accounts_for_every_line(runner, tmp_path, small_orders_csv):
    # Two lines with an unreadable date: the load rejects them and keeps them.
    lines = small_orders_csv.read_text(encoding="utf-8").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    date_column = next(i for i, name in enumerate(header) if "date" in name.lower())
    broken = [",".join(first[:date_column] + [value] + first[date_column + 1:]) for value in ("2011-13-45 10:00:00", "not a date")]
    source = tmp_path / "orders_with_bad_dates.csv"
    source.write_text("\n".join(lines + broken) + "\n", encoding="utf-8")
    db = tmp_path / "quality.duckdb"
    assert invoke(runner, "load", db, source).exit_code == 0

    result = invoke(runner, "quality", db)

    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(db), read_only=True)
    n_lines, n_customers, n_buyers = con.execute(
        "select count(*), count(distinct customer_id), count(distinct customer_id) filter (where line_status = 'sale') from mkt.stg_order_lines"
    ).fetchall()[0]
    statuses = con.execute("select line_status, count(*) from mkt.stg_order_lines group by all").fetchall()
    n_products = con.execute("select count(*) from mkt.stg_products").fetchall()[0][0]
    con.close()
    assert f"Order lines read: {n_lines:,} ({n_customers:,} customers, {n_buyers:,} of them with a sale line;" in result.output
    for status, count in statuses:
        assert re.search(rf"^{status}\s.*\s{count:,}$", result.output, re.MULTILINE), status
    assert re.search(r"^orders\s+invalid_date\s+2$", result.output, re.MULTILINE)
    assert re.search(rf"^products\s+[\d,]+\s+{n_products:,}\s", result.output, re.MULTILINE)


def test_quality_report_in_chinese(tmp_path, small_db_copy):
    result = run_process("quality", small_db_copy, lang="zh_CN.UTF-8")

    assert result.returncode == 0, result.stderr
    assert "每行" in result.stdout or "读取" in result.stdout
    assert "Order lines read" not in result.stdout
    assert "lines that repeat" not in result.stdout


def test_score_summary_shows_edited_rule_labels(runner, small_db_copy, trained_model_dir):
    relabeled = invoke(runner, "strategy", "set", small_db_copy, "retention", "--label-en", "Keep them", "--label-zh", "留住他们")
    con = duckdb.connect(str(small_db_copy))
    # Every customer gets the edited rule, so the summary must show its label.
    con.execute("update mkt.strategy_rules set priority = -1, condition = 'true' where code = 'retention'")
    con.close()

    scored = invoke(runner, "score", small_db_copy, "--model", trained_model_dir)

    assert relabeled.exit_code == 0, relabeled.output
    assert scored.exit_code == 0, scored.output
    assert re.search(r"^retention\s+Keep them\s", scored.output, re.MULTILINE)


def test_warn_far_worse_than_baseline_names_metric(caplog):
    from duckmkt.pipeline import warn_far_worse_than_baseline

    metrics = {"purchase_auc": 0.5, "spend_mae": 5369.67, "spend_rmse": 2049.0, "churn_log_loss": 0.55}
    baselines = {"purchase_auc": 0.75, "spend_mae": 369.30, "spend_rmse": 1843.0, "churn_log_loss": 0.60}

    with caplog.at_level("WARNING"):
        flagged = warn_far_worse_than_baseline(metrics, baselines)

    assert flagged == ["spend_mae"]
    assert "The model's spend_mae 14.5 times the baseline's (5,369.67 against 369.30)" in caplog.text
    assert "skip this one unless you name it with --model" in caplog.text
    assert "more epochs" in caplog.text


def test_load_unknown_preset_suggests_closest(runner, tmp_path, small_orders_csv):
    result = invoke(runner, "load", tmp_path / "cli.duckdb", small_orders_csv, "--preset", "online_retial")

    assert result.exit_code == 1
    assert "did you mean online_retail?" in result.output


def test_load_folder_is_named_as_folder(runner, tmp_path):
    result = invoke(runner, "load", tmp_path / "cli.duckdb", tmp_path)

    assert result.exit_code == 1
    assert f"{tmp_path} is a folder" in result.output
    assert not (tmp_path / "cli.duckdb").exists()


@pytest.mark.parametrize(
    ("value", "sign", "expected"),
    [(7192808.0, False, "7,192,808.00"), (12280000.5, True, "+12,280,000.50"), (0.1234567, False, "0.1235"), (-0.5, True, "-0.5")],
)
def test_explain_numbers_without_scientific_notation(value, sign, expected):
    from duckmkt.insight import _plain_number

    assert _plain_number(value, sign=sign) == expected


def test_every_feature_unit_has_chinese_label():
    from duckmkt.features import FEATURES
    from duckmkt.i18n import _
    from duckmkt.model_quality import UNIT_LABELS

    activate_language("zh")
    try:
        chinese = {unit: _(UNIT_LABELS[unit]) for unit in {feature.unit for feature in FEATURES}}
    finally:
        activate_language("en")

    for unit, label in chinese.items():
        assert label != unit, unit


def test_load_wrong_delimiter_names_the_right_one(runner, tmp_path, small_orders_csv):
    lines = small_orders_csv.read_text(encoding="utf-8").splitlines()[:50]
    semicolons = tmp_path / "semicolon.csv"
    semicolons.write_text("\n".join(line.replace(",", ";") for line in lines) + "\n", encoding="utf-8")

    result = invoke(runner, "load", tmp_path / "cli.duckdb", semicolons, "--delimiter", ",")

    assert result.exit_code == 1
    assert "read as one column, which contains ';'" in result.output
    assert "--delimiter ';'" in result.output


def test_load_missing_column_names_closest_preset(runner, tmp_path, small_orders_csv):
    rows = list(csv.reader(small_orders_csv.read_text(encoding="utf-8").splitlines()[:50]))
    dropped = rows[0].index("CustomerID")
    source = tmp_path / "no_customer.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([row[:dropped] + row[dropped + 1:] for row in rows])

    result = invoke(runner, "load", tmp_path / "cli.duckdb", source)

    assert result.exit_code == 1
    assert "the closest, online_retail, also needs CustomerID" in result.output


def test_explain_mistyped_models_dir_notes_recorded_folder(runner, recorded_db, trained_model_dir, tmp_path):
    missing = tmp_path / "modles"

    result = invoke(runner, "explain", recorded_db, "--models-dir", missing)

    assert result.exit_code == 0, result.output
    assert f"{missing} has no version {trained_model_dir.name} of model customer" in result.output


def test_score_missing_models_folder_is_named(runner, small_db_copy, tmp_path):
    missing = tmp_path / "modles"

    result = invoke(runner, "score", small_db_copy, "--models-dir", missing)

    assert result.exit_code == 1
    assert f"The models folder {missing} does not exist" in result.output
