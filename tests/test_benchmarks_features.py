"""The SQL feature views, the polars query and the pandas code of bench_features.py give the same numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_features():
    return load_benchmark("bench_features")


@pytest.fixture(scope="module")
def small_lines_parquet(tmp_path_factory, small_db) -> Path:
    """The raw order lines of the small real database, as the Parquet file the benchmark reads."""
    path = tmp_path_factory.mktemp("bench_features") / "lines.parquet"
    con = duckdb.connect(str(small_db), read_only=True)
    con.execute(f"copy raw.order_lines to '{path}' (format parquet)")
    con.close()
    return path


@pytest.fixture(scope="module")
def engine_features(bench_features, small_lines_parquet, tmp_path_factory) -> dict[str, pl.DataFrame]:
    """The features of each engine, sorted by customer_id."""
    con = bench_features.open_sql(small_lines_parquet, tmp_path_factory.mktemp("bench_features_db"))
    pattern = bench_features.non_product_pattern(con)
    bench_features.features_sql(con)
    columns = ", ".join(["customer_id", *bench_features.ORDER_FEATURES])
    sql = pl.from_arrow(con.sql(f"select {columns} from features").to_arrow_table())
    con.close()
    polars_result = bench_features.features_polars(small_lines_parquet, pattern)
    pandas_result = pl.from_pandas(bench_features.features_pandas(small_lines_parquet, pattern))
    return {name: frame.sort("customer_id") for name, frame in (("sql", sql), ("polars", polars_result), ("pandas", pandas_result))}


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_bench_features_same_customers(engine_features, engine):
    expected = engine_features["sql"]["customer_id"].to_list()

    assert len(expected) > 300
    assert engine_features[engine]["customer_id"].to_list() == expected


@pytest.mark.parametrize("engine", ["polars", "pandas"])
def test_bench_features_same_values(engine_features, bench_features, engine):
    # SQL sums DECIMAL amounts while polars and pandas add float64, so values
    # agree to a relative 1e-9, not bit for bit.
    for name in bench_features.ORDER_FEATURES:
        expected = engine_features["sql"][name].cast(pl.Float64).to_numpy()
        actual = engine_features[engine][name].cast(pl.Float64).to_numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
