"""Time the SQL feature views against the same features in polars and in pandas.

Each engine starts from the same Parquet file of raw order lines, written by
scale_data.py with all columns as text, as ``raw.order_lines`` stores them. It ends
with the 18 order features of ``mkt.customer_features_at(cutoff)`` for every
customer, materialized in memory: a DuckDB temp table, a polars DataFrame, a
pandas DataFrame. All three do the same work: trim and type the text, drop
exact duplicates, classify each line (cancellation, return, non-product,
zero price, sale), build orders, then aggregate per customer.

    python benchmarks/bench_features.py /tmp/duckmkt-scale/lines_110000.parquet [--repeats 3] [--skip pandas]

The DuckDB run reads the Parquet file through a view named raw.order_lines,
so the installed views run unchanged. Ratios are medians of --repeats runs
in this process. pandas needs the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from duckmkt.database import connect_database

CUTOFF = "2011-12-10"
ORDER_FEATURES = (
    "recency_days",
    "tenure_days",
    "frequency",
    "monetary_value",
    "avg_order_value",
    "max_order_value",
    "mean_days_between_orders",
    "orders_per_month",
    "n_orders_30d",
    "n_orders_90d",
    "spend_30d",
    "spend_90d",
    "spend_180d",
    "n_products",
    "avg_items_per_order",
    "avg_unit_price",
    "n_returns",
    "return_rate",
)
# The columns whose trimmed text must all repeat for a line to be an exact duplicate.
DUPLICATE_KEY = (
    "source_file",
    "customer_id",
    "order_id",
    "ordered_at",
    "product_id",
    "quantity",
    "unit_price",
    "description",
    "country",
)
TEXT_COLUMNS = ("customer_id", "order_id", "ordered_at", "product_id", "quantity", "unit_price", "description", "country")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SECONDS_PER_DAY = 86400.0


def open_sql(parquet: Path, folder: Path) -> duckdb.DuckDBPyConnection:
    """Return a database under ``folder`` whose raw.order_lines is a view over ``parquet``."""
    con = connect_database(folder / "features.duckdb")
    con.execute("set enable_progress_bar = false")
    con.execute("drop table raw.order_lines")
    con.execute(f"create view raw.order_lines as select * from read_parquet('{parquet}')")
    return con


def non_product_pattern(con: duckdb.DuckDBPyConnection) -> str:
    """Return one regular expression that fully matches an upper-cased non-product code of mkt.non_product_codes."""
    patterns = [row[0].upper() for row in con.execute("select pattern from mkt.non_product_codes").fetchall()]
    return "^(?:" + "|".join(patterns) + ")$"


def features_sql(con: duckdb.DuckDBPyConnection, cutoff: str = CUTOFF) -> int:
    """Materialize mkt.customer_features_at(cutoff) as the temp table features; return its row count."""
    con.execute("create or replace temp table features as select * from mkt.customer_features_at($cutoff::date)", {"cutoff": cutoff})
    return con.execute("select count(*) from features").fetchall()[0][0]


def features_polars(parquet: Path, pattern: str, cutoff: str = CUTOFF) -> pl.DataFrame:
    """Compute the order features of customer_features_at(cutoff) with one polars lazy query."""
    cutoff_at = datetime.fromisoformat(cutoff)
    text = [pl.col(name).str.strip_chars().replace("", None).alias(name) for name in TEXT_COLUMNS]
    lines = (
        pl.scan_parquet(parquet)
        .with_columns(text)
        .with_columns(pl.col("customer_id").str.replace(r"^([0-9]+)\.0+$", "${1}"))
        .sort("source_line")
        .with_columns(
            is_duplicate=~pl.struct(DUPLICATE_KEY).is_first_distinct(),
            at=pl.col("ordered_at").str.to_datetime(TIMESTAMP_FORMAT, strict=False),
            quantity_value=pl.col("quantity").cast(pl.Float64, strict=False),
            unit_price_value=pl.col("unit_price").cast(pl.Float64, strict=False),
        )
        .with_columns(amount=pl.col("quantity_value") * pl.col("unit_price_value"))
    )
    is_invalid = pl.any_horizontal(
        pl.col(name).is_null() for name in ("order_id", "product_id", "at", "quantity_value", "unit_price_value")
    )
    status = (
        pl.when(pl.col("is_duplicate")).then(pl.lit("duplicate"))
        .when(is_invalid).then(pl.lit("invalid"))
        .when(pl.col("customer_id").is_null()).then(pl.lit("missing_customer"))
        .when(pl.col("order_id").str.to_uppercase().str.starts_with("C")).then(pl.lit("cancellation"))
        .when(pl.col("quantity_value") < 0).then(pl.lit("return"))
        .when(pl.col("product_id").str.to_uppercase().str.contains(pattern)).then(pl.lit("non_product"))
        .when(pl.col("unit_price_value") <= 0).then(pl.lit("zero_price"))
        .otherwise(pl.lit("sale"))
    )
    lines = lines.with_columns(status=status)
    sales = lines.filter(pl.col("status") == "sale")
    days_before = (pl.lit(cutoff_at) - pl.col("at")).dt.total_microseconds() / (SECONDS_PER_DAY * 1e6)

    orders = (
        sales.group_by("customer_id", "order_id")
        .agg(at=pl.col("at").min(), order_value=pl.col("amount").sum(), n_items=pl.col("quantity_value").sum())
        .filter(pl.col("at") < cutoff_at)
        .with_columns(days=days_before)
    )
    order_stats = orders.group_by("customer_id").agg(
        recency_days=pl.col("days").min(),
        tenure_days=pl.col("days").max(),
        frequency=pl.len().cast(pl.Float64),
        monetary_value=pl.col("order_value").sum(),
        avg_order_value=pl.col("order_value").mean(),
        max_order_value=pl.col("order_value").max(),
        avg_items_per_order=pl.col("n_items").mean(),
        n_orders_30d=(pl.col("days") <= 30).sum().cast(pl.Float64),
        n_orders_90d=(pl.col("days") <= 90).sum().cast(pl.Float64),
        spend_30d=pl.col("order_value").filter(pl.col("days") <= 30).sum(),
        spend_90d=pl.col("order_value").filter(pl.col("days") <= 90).sum(),
        spend_180d=pl.col("order_value").filter(pl.col("days") <= 180).sum(),
    )
    product_stats = (
        sales.filter(pl.col("at") < cutoff_at)
        .group_by("customer_id")
        .agg(
            n_products=pl.col("product_id").n_unique().cast(pl.Float64),
            amount=pl.col("amount").sum(),
            quantity=pl.col("quantity_value").sum(),
        )
        .select("customer_id", "n_products", avg_unit_price=pl.col("amount") / pl.when(pl.col("quantity") != 0).then(pl.col("quantity")))
    )
    return_stats = (
        lines.filter(pl.col("status").is_in(["cancellation", "return"]) & (pl.col("at") < cutoff_at))
        .group_by("customer_id")
        .agg(n_returns=pl.col("order_id").n_unique().cast(pl.Float64), returned_amount=pl.col("amount").abs().sum())
    )
    returned = pl.col("returned_amount").fill_null(0.0)
    final = (
        order_stats.join(product_stats, on="customer_id", how="left")
        .join(return_stats, on="customer_id", how="left")
        .with_columns(
            mean_days_between_orders=pl.when(pl.col("frequency") > 1).then(
                (pl.col("tenure_days") - pl.col("recency_days")) / (pl.col("frequency") - 1)
            ),
            orders_per_month=pl.col("frequency") / pl.max_horizontal(pl.col("tenure_days"), pl.lit(1.0)) * 30.0,
            n_returns=pl.col("n_returns").fill_null(0.0),
            return_rate=returned / (pl.col("monetary_value") + returned),
        )
        .select("customer_id", *ORDER_FEATURES)
    )
    return final.collect()


def features_pandas(parquet: Path, pattern: str, cutoff: str = CUTOFF):
    """Compute the order features of customer_features_at(cutoff) with pandas, step by step."""
    import pandas as pd

    cutoff_at = pd.Timestamp(cutoff)
    lines = pd.read_parquet(parquet)
    for name in TEXT_COLUMNS:
        lines[name] = lines[name].str.strip().replace("", None)
    lines["customer_id"] = lines["customer_id"].str.replace(r"^([0-9]+)\.0+$", r"\1", regex=True)
    lines = lines.sort_values("source_line", kind="stable")
    lines["is_duplicate"] = lines.duplicated(list(DUPLICATE_KEY), keep="first")
    lines["at"] = pd.to_datetime(lines["ordered_at"], format=TIMESTAMP_FORMAT, errors="coerce")
    lines["quantity_value"] = pd.to_numeric(lines["quantity"], errors="coerce")
    lines["unit_price_value"] = pd.to_numeric(lines["unit_price"], errors="coerce")
    lines["amount"] = lines["quantity_value"] * lines["unit_price_value"]

    is_invalid = lines[["order_id", "product_id", "at", "quantity_value", "unit_price_value"]].isna().any(axis=1)
    conditions = [
        lines["is_duplicate"],
        is_invalid,
        lines["customer_id"].isna(),
        lines["order_id"].str.upper().str.startswith("C").fillna(False).astype(bool),
        lines["quantity_value"] < 0,
        lines["product_id"].str.upper().str.match(pattern).fillna(False).astype(bool),
        lines["unit_price_value"] <= 0,
    ]
    choices = ["duplicate", "invalid", "missing_customer", "cancellation", "return", "non_product", "zero_price"]
    lines["status"] = np.select(conditions, choices, default="sale")
    sales = lines[lines["status"] == "sale"]

    orders = sales.groupby(["customer_id", "order_id"], as_index=False).agg(
        at=("at", "min"), order_value=("amount", "sum"), n_items=("quantity_value", "sum")
    )
    orders = orders[orders["at"] < cutoff_at].copy()
    orders["days"] = (cutoff_at - orders["at"]).dt.total_seconds() / SECONDS_PER_DAY
    for window in (30, 90, 180):
        orders[f"in_{window}d"] = orders["days"] <= window
        orders[f"spend_{window}d"] = orders["order_value"].where(orders[f"in_{window}d"], 0.0)
    order_stats = orders.groupby("customer_id").agg(
        recency_days=("days", "min"),
        tenure_days=("days", "max"),
        frequency=("days", "size"),
        monetary_value=("order_value", "sum"),
        avg_order_value=("order_value", "mean"),
        max_order_value=("order_value", "max"),
        avg_items_per_order=("n_items", "mean"),
        n_orders_30d=("in_30d", "sum"),
        n_orders_90d=("in_90d", "sum"),
        spend_30d=("spend_30d", "sum"),
        spend_90d=("spend_90d", "sum"),
        spend_180d=("spend_180d", "sum"),
    )

    recent_sales = sales[sales["at"] < cutoff_at]
    product_stats = recent_sales.groupby("customer_id").agg(
        n_products=("product_id", "nunique"), amount=("amount", "sum"), quantity=("quantity_value", "sum")
    )
    product_stats["avg_unit_price"] = product_stats["amount"] / product_stats["quantity"].where(product_stats["quantity"] != 0)

    returns = lines[lines["status"].isin(["cancellation", "return"]) & (lines["at"] < cutoff_at)].copy()
    returns["returned_amount"] = returns["amount"].abs()
    return_stats = returns.groupby("customer_id").agg(n_returns=("order_id", "nunique"), returned_amount=("returned_amount", "sum"))

    final = order_stats.join(product_stats[["n_products", "avg_unit_price"]], how="left").join(return_stats, how="left")
    final["mean_days_between_orders"] = ((final["tenure_days"] - final["recency_days"]) / (final["frequency"] - 1)).where(
        final["frequency"] > 1
    )
    final["orders_per_month"] = final["frequency"] / final["tenure_days"].clip(lower=1.0) * 30.0
    final["n_returns"] = final["n_returns"].fillna(0.0)
    returned = final["returned_amount"].fillna(0.0)
    final["return_rate"] = returned / (final["monetary_value"] + returned)
    return final.reset_index()[["customer_id", *ORDER_FEATURES]].astype({name: "float64" for name in ORDER_FEATURES})


def time_runs(run, repeats: int, engine: str) -> tuple[float, object]:
    """Return the median wall time in seconds of ``repeats`` calls of ``run`` and its last result.

    Each run's time goes to stderr at once, so a long run that is stopped
    still leaves the figures of the engines before it.
    """
    timings = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - started)
        print(f"{engine}: {timings[-1]:.2f} s", file=sys.stderr, flush=True)
    return statistics.median(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parquet", type=Path, help="order lines written by scale_data.py")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per engine; the median counts")
    parser.add_argument("--skip", choices=["polars", "pandas"], action="append", default=[], help="engine to leave out (repeatable)")
    arguments = parser.parse_args()
    parquet = arguments.parquet.resolve()

    with tempfile.TemporaryDirectory(prefix="duckmkt-bench-") as folder:
        con = open_sql(parquet, Path(folder))
        pattern = non_product_pattern(con)
        n_lines = con.execute("select count(*) from raw.order_lines").fetchall()[0][0]
        threads = con.execute("select current_setting('threads')").fetchall()[0][0]
        seconds = {"duckdb": time_runs(lambda: features_sql(con), arguments.repeats, "duckdb")}
        n_customers = seconds["duckdb"][1]
        con.close()
    if "polars" not in arguments.skip:
        seconds["polars"] = time_runs(lambda: features_polars(parquet, pattern), arguments.repeats, "polars")
    if "pandas" not in arguments.skip:
        seconds["pandas"] = time_runs(lambda: features_pandas(parquet, pattern), arguments.repeats, "pandas")

    print(f"{parquet.name}: {n_lines:,} order lines, {n_customers:,} customers; DuckDB threads {threads}, {arguments.repeats} runs each")
    duckdb_seconds = seconds["duckdb"][0]
    for engine, (median, result) in seconds.items():
        print(f"{engine:<7} median {median:8.2f} s  {n_lines / median:>13,.0f} lines/s  {median / duckdb_seconds:6.2f} x the DuckDB time")


if __name__ == "__main__":
    main()
