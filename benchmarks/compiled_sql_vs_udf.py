"""Throughput of the compiled SQL macro against the score_customer UDF on the same rows.

Loads the full Online Retail data into a temporary database, trains a small
model (or takes --model), compiles it, then scores the same feature table
with both paths and prints rows per second and their ratio. Both paths are
timed in this run, on this machine; the best of --repeats runs counts.

    python benchmarks/compiled_sql_vs_udf.py [--copies 20] [--repeats 3] [--model MODEL_DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from duckmkt.compile import compile_model
from duckmkt.database import connect_database
from duckmkt.loading import load_orders
from duckmkt.scoring import register

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"

# Each query reads every prediction and the strategy, so no column is pruned.
SQL_QUERY = """
    select sum(purchase_prob + expected_spend + churn_risk), count(strategy)
    from mkt.score_customers('bench_features')
"""
UDF_QUERY = """
    select sum(s.purchase_prob + s.expected_spend + s.churn_risk), count(s.strategy)
    from (select score_customer(f) as s from bench_features as f)
"""


def best_seconds(con, query: str, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        con.execute(query).fetchall()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="copies of the 4,334 Online Retail customers to score")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; the fastest counts")
    parser.add_argument("--model", type=Path, default=None, help="model folder; default: train a small model")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.duckdb"
        con = connect_database(db)
        load_orders(con, DATA)
        model_dir = arguments.model
        if model_dir is None:
            from duckmkt.training import train

            model_dir = train(con, models_dir=Path(folder) / "models", name="customer", epochs=8, seed=0).model_dir
        compile_model(con, model_dir)
        register(con, model_dir)
        con.execute(
            "create temp table bench_features as "
            "select f.* replace (f.customer_id || '-' || copy.i as customer_id) "
            "from mkt.customer_features as f, range($copies) as copy(i)",
            {"copies": arguments.copies},
        )
        n_rows = con.execute("select count(*) from bench_features").fetchall()[0][0]

        sql_seconds = best_seconds(con, SQL_QUERY, arguments.repeats)
        udf_seconds = best_seconds(con, UDF_QUERY, arguments.repeats)
        threads = con.execute("select current_setting('threads')").fetchall()[0][0]
        con.close()

    print(f"rows scored per run: {n_rows:,} (DuckDB threads: {threads})")
    print(f"compiled SQL macro : {sql_seconds:.3f} s, {n_rows / sql_seconds:,.0f} rows/s")
    print(f"score_customer UDF : {udf_seconds:.3f} s, {n_rows / udf_seconds:,.0f} rows/s")
    print(f"SQL / UDF throughput ratio: {udf_seconds / sql_seconds:.2f}")


if __name__ == "__main__":
    main()
