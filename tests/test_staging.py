"""Staging views on the full Online Retail data against its known figures."""

from __future__ import annotations

from duckmkt.database import connect_database
from duckmkt.sql_views import discover

# Published figures of UCI Online Retail.
KNOWN_FIGURES = {
    "rows_read": 541_909,
    "distinct_customers": 4_372,
    "missing_customer_id": 135_080,
    "exact_duplicates": 5_268,
    "cancellations": 9_288,
    "negative_quantity": 10_624,
    "zero_unit_price": 2_515,
    "adjustment_orders": 3,
}


def quality(con) -> dict[str, int]:
    return dict(con.execute("select check_name, n_rows from mkt.data_quality").fetchall())


def test_data_quality_known_figures(online_retail_con):
    counts = quality(online_retail_con)
    for check, expected in KNOWN_FIGURES.items():
        assert counts[check] == expected, check


def test_line_statuses_account_for_every_row(online_retail_con):
    counts = quality(online_retail_con)
    statuses = {name: n for name, n in counts.items() if name.startswith("status:")}

    assert sum(statuses.values()) == counts["rows_read"]
    assert statuses["status:duplicate"] == KNOWN_FIGURES["exact_duplicates"]


def test_dropped_lines_plus_sales_equal_raw_rows(online_retail_con):
    n_raw = online_retail_con.execute("select count(*) from raw.order_lines").fetchall()[0][0]
    n_sales = online_retail_con.execute("select count(*) from mkt.int_sales").fetchall()[0][0]
    n_dropped = online_retail_con.execute("select count(*) from mkt.dropped_order_lines").fetchall()[0][0]

    assert n_sales + n_dropped == n_raw


def test_sales_exclude_non_product_codes(online_retail_con):
    codes = {
        row[0]
        for row in online_retail_con.execute(
            "select distinct upper(product_id) from mkt.int_sales where regexp_full_match(product_id, '[A-Za-z_ ]+.*')"
        ).fetchall()
    }
    for code in ("POST", "DOT", "M", "D", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B"):
        assert code not in codes


def test_sales_are_positive_lines_of_known_customers(online_retail_con):
    row = online_retail_con.execute(
        """
        select
            count(*) filter (where customer_id is null),
            count(*) filter (where quantity <= 0 or unit_price <= 0),
            count(*) filter (where upper(order_id) like 'C%'),
        from mkt.int_sales
        """
    ).fetchall()[0]
    assert row == (0, 0, 0)


def test_customer_ids_stay_strings(online_retail_con):
    column_type = online_retail_con.execute(
        "select data_type from information_schema.columns where table_name = 'stg_order_lines' and column_name = 'customer_id'"
    ).fetchall()[0][0]
    sample = online_retail_con.execute("select min(customer_id) from mkt.int_sales").fetchall()[0][0]

    assert column_type == "VARCHAR"
    assert sample == "12346"


def test_install_views_twice_keeps_data(tmp_path, small_orders_csv):
    from duckmkt.loading import load_orders

    path = tmp_path / "twice.duckdb"
    con = connect_database(path)
    load_orders(con, small_orders_csv)
    before = quality(con)
    con.close()

    con = connect_database(path)
    after = quality(con)
    n_codes = con.execute("select count(*) from mkt.non_product_codes").fetchall()[0][0]
    con.close()

    assert after == before
    assert n_codes == 13


def test_sql_files_install_in_dependency_order():
    names = [sql_file.name for sql_file in discover()]

    assert names.index("raw.order_lines") < names.index("mkt.stg_order_lines")
    assert names.index("mkt.stg_order_lines") < names.index("mkt.int_sales")
    assert names.index("mkt.int_orders") < names.index("mkt.customer_features_at")
    assert names.index("mkt.customer_features_at") < names.index("mkt.customer_features")
