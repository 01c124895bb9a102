"""DuckDB against Spark local mode: customer features and ONNX scores on 1x, 10x, 100x Online Retail.

For each scale factor the script builds a scaled database with
``spark_scale.py`` (every customer copied under new ids), exports its tables
to Parquet for Spark, and times on both backends:

* features: ``mkt.customer_features_at(cutoff)`` from the raw order lines,
  written to Parquet;
* scores: the ONNX model over those features (DuckDB's ``score_customer``
  UDF, Spark's ``mapInArrow``), written to Parquet.

Spark's times include caching its staging and intermediate views but not
starting the JVM, which is timed once and printed apart. The model is trained
once on the 1x data with few epochs: its quality does not matter here.
Each figure is one run, so repeat a run before trusting small differences.

Usage:
    python benchmarks/spark_backends.py --scales 1 10 100 --master 'local[2]'
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spark_scale import scale_database  # noqa: E402

from duckmkt import scoring  # noqa: E402
from duckmkt.database import connect_database  # noqa: E402
from duckmkt.loading import load_orders  # noqa: E402
from duckmkt.spark.catalog import SparkCatalog, export_tables  # noqa: E402
from duckmkt.spark.scoring import score_features  # noqa: E402
from duckmkt.spark.session import local_session  # noqa: E402

ONLINE_RETAIL = Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
CUTOFF = date(2011, 12, 10)


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def duckdb_run(db: Path, model_dir: Path, work: Path) -> dict[str, float]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        features_file = work / "duckdb_features.parquet"
        _, features_seconds = timed(
            lambda: con.execute(
                f"copy (select * from mkt.customer_features_at(date '{CUTOFF}')) to '{features_file}' (format parquet)"
            ).fetchall()
        )
        scoring.register(con, model_dir)
        scores_file = work / "duckdb_scores.parquet"
        _, score_seconds = timed(
            lambda: con.execute(
                f"copy (select customer_id, unnest(score_customer(f)) from read_parquet('{features_file}') as f) "
                f"to '{scores_file}' (format parquet)"
            ).fetchall()
        )
        n_customers = con.execute(f"select count(*) from read_parquet('{features_file}')").fetchall()[0][0]
    finally:
        con.close()
    return {"features": features_seconds, "scores": score_seconds, "customers": n_customers}


def spark_run(session, tables: Path, model_dir: Path, work: Path) -> dict[str, float]:
    catalog = SparkCatalog(session, tables)
    features_dir = work / "spark_features"
    _, features_seconds = timed(
        lambda: catalog.customer_features_at(CUTOFF).write.mode("overwrite").parquet(str(features_dir))
    )
    scores_dir = work / "spark_scores"
    features = session.read.parquet(str(features_dir))
    _, score_seconds = timed(lambda: score_features(features, model_dir).write.mode("overwrite").parquet(str(scores_dir)))
    n_customers = session.read.parquet(str(features_dir)).count()
    catalog.uncache()
    return {"features": features_seconds, "scores": score_seconds, "customers": n_customers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="duckmkt-spark-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "online_retail_1x.duckdb"
    if not base.exists():
        con = connect_database(base)
        load_orders(con, ONLINE_RETAIL)
        con.close()

    from duckmkt.training import train

    con = duckdb.connect(str(base), read_only=True)
    model_dir = train(con, models_dir=work / "models", name="customer", epochs=5, seed=0).model_dir
    con.close()

    session, start_seconds = timed(
        lambda: local_session(args.master, shuffle_partitions=4, driver_memory=args.driver_memory)
    )
    session.sparkContext.setLogLevel("ERROR")
    print(f"Spark {session.version} on {args.master}: session start {start_seconds:.1f} s")
    print(f"{'scale':>5} {'lines':>11} {'customers':>9} {'step':>8} {'duckdb s':>9} {'spark s':>9} {'spark/duckdb':>12}")

    for factor in args.scales:
        db = base if factor == 1 else work / f"online_retail_{factor}x.duckdb"
        if factor != 1 and not db.exists():
            scale_database(base, db, factor)
        con = duckdb.connect(str(db), read_only=True)
        n_lines = con.execute("select count(*) from raw.order_lines").fetchall()[0][0]
        tables = work / f"tables_{factor}x"
        if not tables.exists():
            export_tables(con, tables)
        con.close()

        scale_work = work / f"out_{factor}x"
        shutil.rmtree(scale_work, ignore_errors=True)
        scale_work.mkdir()
        duck = duckdb_run(db, model_dir, scale_work)
        spark = spark_run(session, tables, model_dir, scale_work)
        assert duck["customers"] == spark["customers"]
        for step in ("features", "scores"):
            ratio = spark[step] / duck[step]
            print(
                f"{factor:>4}x {n_lines:>11} {duck['customers']:>9} {step:>8} "
                f"{duck[step]:>9.1f} {spark[step]:>9.1f} {ratio:>12.1f}",
                flush=True,
            )
    session.stop()


if __name__ == "__main__":
    main()
