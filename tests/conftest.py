"""Shared fixtures: the real datasets and databases built from them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from duckmkt.database import connect_database
from duckmkt.loading import load_orders

# CI runs the property-based tests with a fixed example sequence, so a CI run
# fails only when the code changes. Local runs explore new examples each time.
try:
    from hypothesis import settings as hypothesis_settings

    hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI"):
        hypothesis_settings.load_profile("ci")
except ImportError:  # hypothesis is a test extra; without it only those tests fail
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ONLINE_RETAIL = SHARED_DATA / "online_retail" / "online_retail.csv.gz"

# Customers whose id falls in the first 10 of 100 md5 buckets: about 430 of
# the 4,372, enough for a small model that trains in seconds.
SMALL_SUBSET_SQL = """
copy (
    select *
    from read_csv('{source}', all_varchar = true, header = true)
    where CustomerID is not null
      and (('0x' || left(md5(CustomerID), 8))::bigint % 100) < 10
) to '{target}' (format csv, header true)
"""


@pytest.fixture(scope="session")
def online_retail_path() -> Path:
    if not ONLINE_RETAIL.is_file():
        pytest.fail(f"The Online Retail data is missing at {ONLINE_RETAIL}; the tests need ../shared/data.")
    return ONLINE_RETAIL


@pytest.fixture(scope="session")
def online_retail_db(tmp_path_factory, online_retail_path) -> Path:
    """A database file with the full Online Retail data loaded (read it, do not write)."""
    path = tmp_path_factory.mktemp("online_retail") / "online_retail.duckdb"
    con = connect_database(path)
    load_orders(con, online_retail_path)
    con.close()
    return path


@pytest.fixture
def online_retail_con(online_retail_db):
    """A read-only connection to the full Online Retail database."""
    con = duckdb.connect(str(online_retail_db), read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="session")
def small_orders_csv(tmp_path_factory, online_retail_path) -> Path:
    """The real invoice lines of about 430 Online Retail customers, as CSV."""
    path = tmp_path_factory.mktemp("small") / "online_retail_small.csv"
    duckdb.connect().execute(SMALL_SUBSET_SQL.format(source=online_retail_path, target=path))
    return path


@pytest.fixture(scope="session")
def small_db(tmp_path_factory, small_orders_csv) -> Path:
    """A database file with the small real subset loaded."""
    path = tmp_path_factory.mktemp("small_db") / "small.duckdb"
    con = connect_database(path)
    load_orders(con, small_orders_csv)
    con.close()
    return path


@pytest.fixture
def small_db_copy(tmp_path, small_db) -> Path:
    """A private copy of the small database that a test may change."""
    target = tmp_path / "small.duckdb"
    shutil.copy(small_db, target)
    return target


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, small_db) -> Path:
    """A small model trained on the small real subset, saved in a temporary registry."""
    from duckmkt.training import train

    models_dir = tmp_path_factory.mktemp("models")
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        result = train(con, models_dir=models_dir, name="customer", epochs=8, seed=0)
    finally:
        con.close()
    return result.model_dir


@pytest.fixture(scope="session")
def spark_session():
    """One local[2] SparkSession for every Spark test, bound to 127.0.0.1 with the web UI off."""
    pytest.importorskip("pyspark", reason="the Spark tests need the 'spark' extra: pip install -e '.[spark]'")
    from duckmkt.spark.session import local_session

    session = local_session("local[2]", shuffle_partitions=4, driver_memory="1g")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def rules_con(small_db_copy, trained_model_dir):
    """A connection to a private copy of the small database with score_customer registered."""
    from duckmkt.scoring import register

    con = duckdb.connect(str(small_db_copy))
    register(con, trained_model_dir)
    yield con
    con.close()
