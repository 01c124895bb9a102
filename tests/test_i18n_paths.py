"""Chinese text through every path: CSV in GBK or UTF-8, DuckDB, Arrow UDF results, the PostgreSQL wire, the report.

The order lines are real Online Retail rows whose product descriptions and
countries are replaced with Chinese text, so every value must come back
unchanged, character for character.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import psycopg
import pytest

from duckmkt import i18n
from duckmkt.database import connect_database
from duckmkt.loading import load_file
from duckmkt.report import write_report
from duckmkt.scoring import register

CJK = re.compile(r"[\u4e00-\u9fff]")
PASSWORD = "test-password-zh"
N_ROWS = 200

# Product names with full-width punctuation and the middle dot, all in GBK.
PRODUCT_NAMES = (
    "白色心形挂灯",
    "复古红色闹钟",
    "圣诞彩灯（10 只装）",
    "手绘陶瓷茶杯·青花",
    "蓝色波点餐巾纸，20 张",
    "儿童午餐盒——恐龙",
    "香薰蜡烛礼盒「薰衣草」",
    "刺绣抱枕套",
)
COUNTRIES = ("英国", "中国", "法国", "德国")
RETENTION_LABEL_ZH = "高价值客户挽留（电话回访）"


def chinese_rows(source: Path) -> list[list[str]]:
    """Return the header and the first N_ROWS rows of ``source`` with Chinese descriptions and countries."""
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [row for _index, row in zip(range(N_ROWS), reader)]
    description = header.index("Description")
    country = header.index("Country")
    for index, row in enumerate(rows):
        row[description] = PRODUCT_NAMES[index % len(PRODUCT_NAMES)]
        row[country] = COUNTRIES[index % len(COUNTRIES)]
    return [header, *rows]


def write_csv(rows: list[list[str]], path: Path, encoding: str) -> Path:
    with path.open("w", newline="", encoding=encoding) as handle:
        csv.writer(handle).writerows(rows)
    return path


def expected_values(rows: list[list[str]]) -> list[tuple[str, str]]:
    header = rows[0]
    description = header.index("Description")
    country = header.index("Country")
    return [(row[description], row[country]) for row in rows[1:]]


@pytest.fixture(scope="module")
def order_rows(small_orders_csv) -> list[list[str]]:
    return chinese_rows(small_orders_csv)


@pytest.fixture(scope="module")
def gbk_db(tmp_path_factory, order_rows) -> Path:
    """A database with the Chinese order lines loaded from a GBK file."""
    folder = tmp_path_factory.mktemp("gbk")
    path = folder / "orders.duckdb"
    con = connect_database(path)
    try:
        load_file(con, write_csv(order_rows, folder / "orders_gbk.csv", "gbk"))
    finally:
        con.close()
    return path


def loaded_values(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    return con.execute("select description, country from raw.order_lines order by source_line").fetchall()


@pytest.mark.parametrize(
    ("file_encoding", "encoding_option"),
    [
        ("utf-8", None),
        ("utf-8-sig", None),
        ("gbk", None),
        ("gbk", "gbk"),
        ("gb18030", "gb18030"),
    ],
)
def test_chinese_csv_loads_unchanged(tmp_path, order_rows, file_encoding, encoding_option):
    path = write_csv(order_rows, tmp_path / f"orders_{file_encoding}.csv", file_encoding)
    con = connect_database(tmp_path / "orders.duckdb")
    try:
        report = load_file(con, path, encoding=encoding_option)
        raw = loaded_values(con)
        staged = con.execute(
            "select description, country from mkt.stg_order_lines order by source_line"
        ).fetchall()
    finally:
        con.close()

    assert report.n_rows_rejected == 0
    assert raw == expected_values(order_rows)
    assert staged == expected_values(order_rows)


def test_chinese_explanation_reasons_through_arrow_udf(small_db, trained_model_dir):
    query = "select explain_customer(f, 3) from mkt.customer_features as f order by customer_id limit 20"
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        register(con, trained_model_dir)
        i18n.set_language("zh")
        chinese = [row[0] for row in con.execute(query).fetchall()]
        i18n.set_language("en")
        english = [row[0] for row in con.execute(query).fetchall()]
    finally:
        i18n.set_language("en")
        con.close()

    chinese_heads = {"purchase_prob": "购买概率", "expected_spend": "预期消费", "churn_risk": "流失风险"}
    for zh_row, en_row in zip(chinese, english):
        for head, head_label in chinese_heads.items():
            zh_items = zh_row[head]["top_features"]
            en_items = en_row[head]["top_features"]
            assert [item["reason_code"] for item in zh_items] == [item["reason_code"] for item in en_items]
            for zh_item, en_item in zip(zh_items, en_items):
                assert CJK.search(zh_item["reason"]), zh_item["reason"]
                assert head_label in zh_item["reason"]
                assert not CJK.search(en_item["reason"]), en_item["reason"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(db: Path, model_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    env.update({"LANG": "zh_CN.UTF-8", "DUCKMKT_SERVE_PASSWORD": PASSWORD})
    process = subprocess.Popen(
        [sys.executable, "-m", "duckmkt", "serve", str(db), "--port", str(port), "--model", str(model_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"duckmkt serve exited with {process.returncode}: {process.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"duckmkt serve did not listen on port {port} within 60 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


def test_chinese_text_through_postgres_wire(tmp_path, gbk_db, order_rows, trained_model_dir):
    db = tmp_path / "served.duckdb"
    shutil.copy(gbk_db, db)
    process, port = start_server(db, trained_model_dir)
    try:
        conninfo = f"host=127.0.0.1 port={port} user=duckmkt dbname=duckmkt password={PASSWORD} connect_timeout=10"
        with psycopg.connect(conninfo, autocommit=True) as connection:
            values = connection.execute("select description, country from raw.order_lines order by source_line").fetchall()
            labels = connection.execute("select code, label_zh from mkt.strategy_rules order by priority").fetchall()
            echoed = connection.execute("select %s::varchar as text", ["客户挽留：预期消费 ¥1,234.50"]).fetchall()
            reasons = connection.execute(
                "select unnest((explain_customer(f, 3)).churn_risk.top_features).reason "
                "from mkt.customer_features as f order by customer_id limit 5"
            ).fetchall()
    finally:
        stop_server(process)

    assert [tuple(row) for row in values] == expected_values(order_rows)
    assert ("retention", "客户挽留") in [tuple(row) for row in labels]
    assert echoed[0][0] == "客户挽留：预期消费 ¥1,234.50"
    assert reasons
    for (reason,) in reasons:
        assert "流失风险" in reason, reason


def test_chinese_text_in_html_report(tmp_path, small_db, trained_model_dir):
    db = tmp_path / "report.duckdb"
    shutil.copy(small_db, db)
    output = tmp_path / "report.html"
    con = connect_database(db)
    try:
        con.execute("update mkt.strategy_rules set label_zh = ? where code = 'retention'", [RETENTION_LABEL_ZH]).fetchall()
        i18n.set_language("zh")
        scorer = register(con, trained_model_dir)
        write_report(con, scorer, output)
    finally:
        i18n.set_language("en")
        con.close()
    page = output.read_bytes().decode("utf-8")

    assert '<html lang="zh-CN">' in page
    assert '<meta charset="utf-8">' in page
    assert "客户模型报告" in page
    assert "策略构成" in page
    assert RETENTION_LABEL_ZH in page


def test_code_labels_cover_shown_codes(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        labels = {
            (kind, code): (label_en, label_zh)
            for kind, code, label_en, label_zh in con.execute("select kind, code, label_en, label_zh from mkt.code_labels").fetchall()
        }
        shown = con.execute(
            """
            select distinct kind, code from (
                select 'strategy' as kind, code from mkt.strategy_rules
                union all select 'channel', channel from mkt.strategy_rules
                union all select 'action', action from mkt.strategy_rules
                union all select 'action', action from mkt.action_effects
                union all select 'line_status', line_status from mkt.stg_order_lines
            )
            """
        ).fetchall()
    finally:
        con.close()

    assert shown
    for key in shown:
        assert key in labels, key
        label_en, label_zh = labels[key]
        assert label_en and not CJK.search(label_en), key
        assert CJK.search(label_zh), key
    assert labels[("strategy", "retention")] == ("Retention", "客户挽留")
