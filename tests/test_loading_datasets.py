"""Load each real dataset with its preset and compare with its known figures."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from duckmkt import sql_views
from duckmkt.loading import load_files, read_mappings


@pytest.fixture(scope="module")
def data_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.fail(f"The real datasets are missing at {path}; the tests need ../shared/data.")
    return path


def _database() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    sql_views.install(con)
    return con


def _scalar(con, sql: str):
    return con.execute(sql).fetchall()[0][0]


def test_online_retail_preset_figures(data_dir):
    con = _database()
    orders, products = load_files(con, data_dir / "online_retail" / "online_retail.csv.gz", read_mappings(preset="online_retail"))
    quality = dict(con.execute("select check_name, n_rows from mkt.data_quality").fetchall())

    assert orders.n_rows_read == 541_909
    assert orders.n_rows_loaded == 541_909
    assert orders.n_rows_rejected == 0
    assert quality["rows_read"] == 541_909
    assert quality["exact_duplicates"] == 5_268
    assert quality["missing_customer_id"] == 135_080
    assert quality["cancellations"] == 9_288
    assert quality["distinct_customers"] == 4_372
    assert products.n_rows_loaded == _scalar(con, "select count(distinct product_id) from mkt.stg_order_lines")
    assert products.n_rows_loaded + products.n_rows_merged == 541_909


def test_online_retail_second_load_adds_nothing(data_dir):
    con = _database()
    path = data_dir / "online_retail" / "online_retail.csv.gz"
    load_files(con, path, read_mappings(preset="online_retail"))
    repeat = load_files(con, path, read_mappings(preset="online_retail"))

    assert all(report.skipped_as_repeat for report in repeat)
    assert _scalar(con, "select count(*) from raw.order_lines") == 541_909
    assert _scalar(con, "select count(*) from raw.load_log") == 2


def test_cdnow_preset_figures(data_dir):
    con = _database()
    [orders] = load_files(con, data_dir / "cdnow" / "CDNOW_master.txt", read_mappings(preset="cdnow"))

    assert orders.delimiter == "whitespace"
    assert orders.n_rows_loaded == 69_659
    assert orders.n_rows_rejected == 0
    assert _scalar(con, "select count(distinct customer_id) from mkt.stg_order_lines") == 23_570
    assert _scalar(con, "select min(customer_id) from mkt.stg_order_lines") == "00001"
    assert _scalar(con, "select count(*) from mkt.stg_order_lines where unit_price = 0") == 80
    assert _scalar(con, "select min(ordered_at)::date::varchar from mkt.stg_order_lines") == "1997-01-01"
    assert _scalar(con, "select max(ordered_at)::date::varchar from mkt.stg_order_lines") == "1998-06-30"
    assert orders.line_status_counts == {"sale": 69_579, "zero_price": 80}


def test_bank_marketing_preset_figures(data_dir):
    con = _database()
    customers, interactions = load_files(
        con, data_dir / "bank_marketing" / "bank-full.csv.gz", read_mappings(preset="bank_marketing")
    )

    assert customers.kind == "customers"
    assert customers.n_rows_loaded == 45_211
    assert interactions.n_rows_loaded == 45_211
    assert _scalar(con, "select count(*) from mkt.stg_interactions where outcome = 'yes'") == 5_289
    assert _scalar(con, "select count(*) from mkt.stg_interactions where outcome = 'no'") == 39_922
    assert _scalar(con, "select min(occurred_at)::date::varchar from mkt.stg_interactions") == "2008-05-05"
    assert _scalar(con, "select max(occurred_at)::date::varchar from mkt.stg_interactions") == "2010-11-17"
    assert _scalar(con, "select count(*) from mkt.stg_customers") == 45_211
    assert _scalar(con, "select customer_id from mkt.stg_customers where source_line = 2") == "2@bank-full"
    assert _scalar(con, "select attributes->>'job' from mkt.stg_customers where source_line = 2") == "management"
    joined = "select count(*) from mkt.stg_interactions join mkt.stg_customers using (customer_id)"
    assert _scalar(con, joined) == 45_211
