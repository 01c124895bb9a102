"""Browsing, interaction and profile features in mkt.customer_features_at."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from duckmkt import sql_views
from duckmkt.features import FEATURE_NAMES
from duckmkt.loading import load_file, load_orders

ORDERS = (
    "customer_id,order_id,ordered_at,product_id,quantity,unit_price\n"
    "C1,1001,2011-03-01 10:00,P1,1,5\n"
    "C2,1002,2011-03-01 10:00,P2,1,5\n"
)
EVENTS = (
    "customer_id,event_at,event_type,product_id,session_id\n"
    "C1,2011-02-01 10:00,view,P1,s1\n"
    "C1,2011-02-01 10:05,add_to_cart,P1,s1\n"
    "C1,2011-02-02 09:00,view,P9,s2\n"
    "C1,2011-04-01 09:00,view,P3,s3\n"
)
INTERACTIONS = (
    "customer_id,occurred_at,channel,campaign_id,interaction_type,outcome\n"
    "C1,2011-02-10,E-mail,spring,open,opened\n"
    "C1,2011-02-10,email,spring,click,clicked\n"
    "C1,2011-04-10,email,summer,open,opened\n"
)
CUSTOMERS = "customer_id,birth_year,signed_up_at\nC1,1980,2011-01-01\nC2,1990,2011-05-01\n"


@pytest.fixture
def con(tmp_path: Path):
    connection = duckdb.connect()
    sql_views.install(connection)
    (tmp_path / "orders.csv").write_text(ORDERS)
    load_orders(connection, tmp_path / "orders.csv")
    yield connection
    connection.close()


def _features(con, cutoff: str) -> dict[str, dict]:
    relation = con.execute(f"select * from mkt.customer_features_at('{cutoff}'::date) order by customer_id")
    names = [column[0] for column in relation.description]
    return {row[0]: dict(zip(names, row)) for row in relation.fetchall()}


def test_feature_columns_follow_catalog(con):
    relation = con.execute("select * from mkt.customer_features_at('2011-06-01'::date)")
    columns = [column[0] for column in relation.description]
    relation.fetchall()

    assert columns[2:] == list(FEATURE_NAMES)


def test_event_features_empty_tables_are_null(con):
    features = _features(con, "2011-06-01")

    for name in ("n_views", "n_sessions", "view_to_purchase_rate", "n_email_opens", "age_years", "days_since_signup"):
        assert features["C1"][name] is None


def test_event_features_point_in_time(con, tmp_path):
    for name, text, kind in (("events.csv", EVENTS, "events"), ("interactions.csv", INTERACTIONS, "interactions"),
                             ("customers.csv", CUSTOMERS, "customers")):
        (tmp_path / name).write_text(text)
        load_file(con, tmp_path / name, kind=kind)
    features = _features(con, "2011-03-15")

    c1, c2 = features["C1"], features["C2"]
    assert c1["n_views"] == 2
    assert c1["n_add_to_carts"] == 1
    assert c1["n_sessions"] == 2
    assert c1["view_to_purchase_rate"] == 0.5
    assert c1["n_email_opens"] == 1
    assert c1["n_email_clicks"] == 1
    assert c1["n_contacts"] == 2
    assert c1["age_years"] == 31
    assert c1["days_since_signup"] == 73
    assert c2["n_views"] == 0
    assert c2["n_sessions"] is None
    assert c2["n_email_opens"] == 0
    # C2 signed up after the cutoff, so the profile is not read.
    assert c2["age_years"] is None
