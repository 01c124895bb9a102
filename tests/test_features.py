"""Point-in-time features and forward-looking labels."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl
import pytest

from duckmkt.features import FEATURE_NAMES, FEATURES, KEY_COLUMNS, calendar_range, features_at

CUTOFF = "2011-06-01"


def feature_frame(con, cutoff: str = CUTOFF) -> pl.DataFrame:
    return features_at(con, cutoff)


def test_feature_columns_match_catalog(online_retail_con):
    columns = feature_frame(online_retail_con).columns

    assert tuple(columns) == KEY_COLUMNS + FEATURE_NAMES


def test_one_row_per_customer(online_retail_con):
    frame = feature_frame(online_retail_con)

    assert frame.height > 0
    assert frame["customer_id"].n_unique() == frame.height


def test_features_ignore_rows_at_or_after_cutoff(small_db_copy):
    con = duckdb.connect(str(small_db_copy))
    before = feature_frame(con)

    # Change every line at or after the cutoff, and add new lines after it for
    # an existing customer and for a new one.
    con.execute(
        """
        update raw.order_lines
        set quantity = '999', unit_price = '1000'
        where try_cast(ordered_at as timestamp) >= ?::timestamp
        """,
        [CUTOFF],
    )
    existing = before["customer_id"][0]
    con.execute(
        """
        insert into raw.order_lines values
            ('test', 'late.csv', 2, ?, '999001', ?, '85123A', '50', '2.55', 'LATE LINE', 'United Kingdom'),
            ('test', 'late.csv', 3, '99999', '999002', '2011-07-01 10:00:00', '85123A', '5', '2.55', 'NEW CUSTOMER', 'France')
        """,
        [existing, f"{CUTOFF} 00:00:00"],
    )
    after = feature_frame(con)
    n_changed = con.execute(
        "select count(*) from raw.order_lines where quantity = '999' and unit_price = '1000'"
    ).fetchall()[0][0]
    con.close()

    assert n_changed > 0
    assert after.equals(before)


def test_features_see_rows_just_before_cutoff(small_db_copy):
    con = duckdb.connect(str(small_db_copy))
    before = feature_frame(con)
    customer = before["customer_id"][0]
    con.execute(
        """
        insert into raw.order_lines values
            ('test', 'early.csv', 2, ?, '999003', ?, '85123A', '10', '3.00', 'EARLY LINE', 'United Kingdom')
        """,
        [customer, "2011-05-31 23:59:00"],
    )
    after = feature_frame(con).filter(pl.col("customer_id") == customer)
    con.close()

    assert after["n_orders_30d"][0] == before.filter(pl.col("customer_id") == customer)["n_orders_30d"][0] + 1
    assert after["recency_days"][0] == pytest.approx(1 / 1440)


def test_customer_features_view_uses_latest_date(online_retail_con):
    cutoff = online_retail_con.execute("select distinct cutoff_date::varchar from mkt.customer_features").fetchall()
    n_rows = online_retail_con.execute("select count(*) from mkt.customer_features").fetchall()[0][0]
    n_buyers = online_retail_con.execute("select count(distinct customer_id) from mkt.int_sales").fetchall()[0][0]

    assert cutoff == [("2011-12-10",)]
    assert n_rows == n_buyers


def test_single_order_customers_have_null_gap(online_retail_con):
    frame = feature_frame(online_retail_con)
    single = frame.filter(pl.col("frequency") == 1)
    repeat = frame.filter(pl.col("frequency") > 1)

    assert single.height > 0
    assert single["mean_days_between_orders"].null_count() == single.height
    assert repeat["mean_days_between_orders"].null_count() == 0


def test_rfm_matches_direct_sql(online_retail_con):
    frame = feature_frame(online_retail_con).filter(pl.col("customer_id") == "12347")
    expected = online_retail_con.execute(
        """
        select count(distinct order_id), sum(quantity * unit_price)
        from mkt.stg_order_lines
        where customer_id = '12347' and line_status = 'sale' and ordered_at < ?::timestamp
        """,
        [CUTOFF],
    ).fetchall()[0]

    assert frame["frequency"][0] == expected[0]
    assert frame["monetary_value"][0] == pytest.approx(float(expected[1]))


def test_order_features_match_intermediate_views(online_retail_con):
    # customer_features_at rebuilds sales, orders and returns from one read of
    # the staged lines; they must equal mkt.int_sales, int_orders, int_returns.
    from_views = online_retail_con.execute(
        """
        with
        orders as (select * from mkt.int_orders where ordered_at < $cutoff::timestamp),
        sales as (select * from mkt.int_sales where ordered_at < $cutoff::timestamp),
        returns as (select * from mkt.int_returns where ordered_at < $cutoff::timestamp),
        order_stats as (
            select customer_id, count(*) as frequency, sum(order_value)::double as monetary_value,
                max(order_value)::double as max_order_value, avg(n_items)::double as avg_items_per_order,
                min((epoch($cutoff::timestamp) - epoch(ordered_at)) / 86400.0) as recency_days
            from orders group by customer_id
        ),
        product_stats as (
            select customer_id, count(distinct product_id)::double as n_products from sales group by customer_id
        ),
        return_stats as (
            select customer_id, count(distinct order_id)::double as n_returns from returns group by customer_id
        )
        select customer_id, frequency, monetary_value, max_order_value, avg_items_per_order, recency_days,
            n_products, coalesce(n_returns, 0) as n_returns
        from order_stats
        left join product_stats using (customer_id)
        left join return_stats using (customer_id)
        order by customer_id
        """,
        {"cutoff": CUTOFF},
    ).fetchall()
    from_macro = online_retail_con.execute(
        """
        select customer_id, frequency, monetary_value, max_order_value, avg_items_per_order, recency_days,
            n_products, n_returns
        from mkt.customer_features_at($cutoff::date)
        order by customer_id
        """,
        {"cutoff": CUTOFF},
    ).fetchall()

    assert len(from_macro) > 2000
    assert from_macro == from_views


def test_labels_look_forward_only(online_retail_con):
    labels = online_retail_con.execute(
        """
        select customer_id, purchased, spend, churned
        from mkt.customer_labels_at(?::date, 60, 120)
        where customer_id = '12347'
        """,
        [CUTOFF],
    ).fetchall()
    future = online_retail_con.execute(
        """
        select
            count(*) filter (where ordered_at < ?::timestamp + interval 60 day),
            coalesce(sum(order_value) filter (where ordered_at < ?::timestamp + interval 60 day), 0),
            count(*) filter (where ordered_at < ?::timestamp + interval 120 day),
        from mkt.int_orders
        where customer_id = '12347' and ordered_at >= ?::timestamp
        """,
        [CUTOFF, CUTOFF, CUTOFF, CUTOFF],
    ).fetchall()[0]

    _, purchased, spend, churned = labels[0]
    assert purchased == int(future[0] > 0)
    assert spend == pytest.approx(float(future[1]))
    assert churned == int(future[2] == 0)


def test_labels_cover_the_feature_customers(online_retail_con):
    n_features = online_retail_con.execute(
        "select count(*) from mkt.customer_features_at(?::date)", [CUTOFF]
    ).fetchall()[0][0]
    n_labels = online_retail_con.execute(
        "select count(*) from mkt.customer_labels_at(?::date, 60, 120)", [CUTOFF]
    ).fetchall()[0][0]

    assert n_labels == n_features


@pytest.mark.train
def test_stacked_training_rows_ignore_later_data(small_db, small_db_copy):
    """Each stacked cutoff's features equal those of a database cut at that cutoff, and its labels end before validation."""
    import shutil
    from datetime import timedelta

    from duckmkt.training import resolve_window
    from duckmkt.training.dataset import load_rows, stack_rows, training_cutoffs

    con = duckdb.connect(str(small_db), read_only=True)
    window = resolve_window(con)
    cutoffs = training_cutoffs(window, 3, 30)
    stacked = stack_rows([load_rows(con, cutoff, window) for cutoff in cutoffs])
    con.close()

    assert len(set(cutoffs)) == 3
    assert max(cutoffs) + timedelta(days=window.churn_horizon_days) <= window.validation_cutoff
    assert set(stacked.row_cutoffs) == set(cutoffs)
    for cutoff in cutoffs:
        # A fresh copy with every line at or after this cutoff removed.
        shutil.copy(small_db, small_db_copy)
        copy = duckdb.connect(str(small_db_copy))
        copy.execute("delete from raw.order_lines where try_cast(ordered_at as timestamp) >= ?::timestamp", [cutoff.isoformat()])
        cut = load_rows(copy, cutoff, window)
        copy.close()

        rows = stacked.row_cutoffs == cutoff
        assert list(stacked.customer_ids[rows]) == list(cut.customer_ids), cutoff
        np.testing.assert_array_equal(stacked.matrix[rows], cut.matrix, err_msg=str(cutoff))


def test_feature_catalog_table(small_db_copy):
    from duckmkt.feature_catalog import write_feature_catalog
    from duckmkt.features import FEATURES

    con = duckdb.connect(str(small_db_copy))
    n_features = write_feature_catalog(con)
    rows = con.execute(
        "select name, unit, source_table, formula, description_en, description_zh from mkt.feature_catalog order by position"
    ).fetchall()
    con.close()

    assert n_features == len(FEATURES) == len(rows)
    assert [row[0] for row in rows] == list(FEATURE_NAMES)
    for name, unit, source, formula, english, chinese in rows:
        assert source.startswith("mkt."), name
        assert formula, name
        assert unit and english and chinese, name


@pytest.mark.parametrize(
    ("name", "later", "expected"),
    [
        ("tenure_days", date(2011, 8, 12), (0.5, 120.0 + 120)),
        ("recency_days", date(2011, 8, 12), (0.5, 120.0 + 120)),
        ("age_years", date(2012, 1, 2), (18.0, 80.0 + 1)),
        ("spend_180d", date(2011, 8, 12), (0.0, 120.0)),
        ("orders_per_month", date(2011, 8, 12), (0.0, 120.0)),
        ("monetary_value", date(2011, 8, 12), (0.5, 120.0)),
        ("tenure_days", date(2011, 4, 1), (0.5, 120.0)),
    ],
)
def test_calendar_range_widens_by_rule(name, later, expected):
    low, high = (18.0, 80.0) if name == "age_years" else (0.5, 120.0)

    widened = calendar_range(name, low, high, date(2011, 4, 14), later)

    assert widened[0] == expected[0]
    # A grown maximum is one float32 step above the exact sum.
    assert widened[1] == pytest.approx(expected[1], rel=1e-6)
    assert widened[1] >= expected[1]


def test_calendar_range_covers_later_cutoff(small_db):
    earlier, later = date(2011, 4, 14), date(2011, 12, 10)
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        before = features_at(con, earlier)
        after = features_at(con, later)
    finally:
        con.close()

    for feature in FEATURES:
        if feature.calendar is None or before[feature.name].null_count() == before.height:
            continue
        low, high = calendar_range(
            feature.name, before[feature.name].min(), before[feature.name].max(), earlier, later
        )
        if feature.calendar == "grows":
            assert after[feature.name].max() <= high, feature.name
        else:
            assert after[feature.name].min() >= low, feature.name
